//! Console sessions as a browser holds them, made through keygate's
//! accounts facade against the running server, and requests made with them.

use serde_json::Value;

use super::TestApp;

/// A console session as a browser holds it: the cookie and the page's CSRF token.
#[derive(Debug, Clone)]
pub struct Browser {
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    /// Signs in through `keygate::accounts::sign_in` against the running
    /// server's state, from 127.0.0.1, as the console will.
    pub async fn try_sign_in(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Browser, keygate::accounts::SignInError> {
        self.try_sign_in_from(email, password, "127.0.0.1").await
    }

    pub async fn try_sign_in_from(
        &self,
        email: &str,
        password: &str,
        from: &str,
    ) -> Result<Browser, keygate::accounts::SignInError> {
        let state = self.state();
        let now = state.clock.now();
        let session =
            keygate::accounts::sign_in(&state, email, password, from.parse().unwrap(), None, now)
                .await?;
        let cookie =
            keygate::accounts::session_cookie(&state, &session.token, session.expires_at, now);
        Ok(Browser {
            cookie: format!("{}={}", cookie.name(), cookie.value()),
            csrf: session.csrf.as_str().to_owned(),
        })
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Browser {
        self.try_sign_in(email, password)
            .await
            .unwrap_or_else(|e| panic!("sign in as {email}: {e}"))
    }

    /// A request to `/api/v1{path}` with the browser's cookie and, when
    /// `csrf` is true, its CSRF token.
    pub fn api_as(
        &self,
        browser: &Browser,
        method: reqwest::Method,
        path: &str,
        csrf: bool,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.address))
            .header("cookie", &browser.cookie);
        if csrf {
            request = request.header("x-csrf-token", &browser.csrf);
        }
        request
    }

    /// The status and JSON body of a request.
    pub async fn send_json(request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}
