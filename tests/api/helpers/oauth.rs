//! Requests to the OAuth endpoints (token, introspection, revocation) and
//! the checks a strict client or resource server makes of their answers.

use std::net::IpAddr;

use serde_json::Value;

use super::{Key, TestApp};

impl TestApp {
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.address)
    }

    /// `client_secret_basic` with the given form.
    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(self.token_url())
            .basic_auth(id, Some(secret))
            .form(form)
            .send()
            .await
            .expect("token request")
    }

    pub async fn token_for(&self, key: &Key, form: &[(&str, &str)]) -> reqwest::Response {
        self.token_basic(&key.client_id, &key.client_secret, form)
            .await
    }

    /// A token request that must succeed; returns the body.
    pub async fn access_token(&self, key: &Key) -> Value {
        let response = self
            .token_for(key, &[("grant_type", "client_credentials")])
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("JSON body");
        assert_eq!(status, 200, "{body}");
        body
    }

    /// A fresh access token for `key`.
    pub async fn token_string(&self, key: &Key) -> String {
        self.access_token(key).await["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.http
            .get(format!("{}/.well-known/jwks.json", self.address))
            .send()
            .await
            .expect("jwks")
            .json()
            .await
            .expect("jwks JSON")
    }

    /// Validates as a strict resource server would: the JWKS from the server,
    /// `typ`, algorithm, signature, issuer, audience and required claims.
    pub async fn validate(&self, token: &str, audience: &str) -> jsonwebtoken::TokenData<Value> {
        let header = jsonwebtoken::decode_header(token).expect("JWT header");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.expect("kid");
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("usable JWK");
        let mut validation = jsonwebtoken::Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token validates")
    }

    /// `POST /oauth/introspect` as `caller` (client_secret_basic).
    pub async fn introspect(&self, caller: &Key, token: &str) -> reqwest::Response {
        self.post_token(caller, "introspect", token).await
    }

    /// Introspection that must answer 200; returns the body.
    pub async fn introspect_ok(&self, caller: &Key, token: &str) -> Value {
        let response = self.introspect(caller, token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.expect("JSON body")
    }

    /// `POST /oauth/revoke` as `caller` (client_secret_basic).
    pub async fn revoke(&self, caller: &Key, token: &str) -> reqwest::Response {
        self.post_token(caller, "revoke", token).await
    }

    /// `POST /oauth/{endpoint}` with `token=...`, authenticated as `caller`.
    async fn post_token(&self, caller: &Key, endpoint: &str, token: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth/{endpoint}", self.address))
            .basic_auth(&caller.client_id, Some(&caller.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("{endpoint} request: {e}"))
    }
}

/// The same secret with one character of its body changed: the checksum
/// no longer matches.
pub fn wrong_checksum(secret: &str) -> String {
    let mut text = secret.to_owned();
    let replacement = if &text[10..11] == "a" { "b" } else { "a" };
    text.replace_range(10..11, replacement);
    text
}

/// A client bound to another loopback address, to act as a second source.
pub fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().expect("ip"))
        .build()
        .expect("client")
}

/// Error body and headers every refused client authentication shares.
pub async fn assert_invalid_client(response: reqwest::Response) {
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="keygate""#
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(
        body,
        serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})
    );
}

pub async fn assert_oauth_error(response: reqwest::Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error");
    assert_eq!(body["error"], error, "{body}");
    body
}
