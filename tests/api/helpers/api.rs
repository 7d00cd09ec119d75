//! The management API (`/api/v1`) called with a bearer token, as a client
//! program calls it.

use reqwest::Method;
use serde_json::Value;

use super::TestApp;

impl TestApp {
    /// `method /api/v1{path}` with the bearer `token` and a JSON body if
    /// any; the status and the JSON body (`null` when there is none).
    pub async fn api(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.address))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::send_json(request).await
    }

    /// [`api`](Self::api) that must answer `status`; returns the body.
    pub async fn api_expect(
        &self,
        method: Method,
        token: &str,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, json) = self.api(method.clone(), token, path, body).await;
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    /// An API refusal: `status` with the error `code`; returns the message.
    pub async fn api_refused(
        &self,
        (method, path, body): (Method, &str, Option<Value>),
        token: &str,
        (status, code): (u16, &str),
    ) -> String {
        let json = self
            .api_expect(method.clone(), token, path, body, status)
            .await;
        assert_eq!(json["error"], code, "{method} {path}: {json}");
        json["message"].as_str().expect("a message").to_owned()
    }
}
