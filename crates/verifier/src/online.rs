//! Online mode: confirming a token through the issuer's introspection
//! endpoint (RFC 7662), answers cached briefly by `jti`.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::claims::Claims;
use super::error::VerifyError;

const CACHE_CAPACITY: usize = 100_000;

pub(super) struct Online {
    http: reqwest::Client,
    endpoint: String,
    /// RFC 6749 §2.3.1: form-urlencoded before Basic encoding.
    basic_user: String,
    basic_password: Zeroizing<String>,
    ttl: Duration,
    answers: quick_cache::sync::Cache<String, (bool, Instant)>,
}

#[derive(serde::Deserialize)]
struct Introspection {
    active: bool,
    jti: Option<String>,
}

fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

impl Online {
    pub(super) fn new(
        http: reqwest::Client,
        endpoint: String,
        client_id: String,
        client_secret: Zeroizing<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            http,
            endpoint,
            basic_user: form_encode(&client_id),
            basic_password: Zeroizing::new(form_encode(&client_secret)),
            ttl,
            answers: quick_cache::sync::Cache::new(CACHE_CAPACITY),
        }
    }

    /// Ok when the issuer says the token is active (or said so within the
    /// cache lifetime).
    pub(super) async fn confirm(&self, token: &str, claims: &Claims) -> Result<(), VerifyError> {
        let cached = self
            .answers
            .get(&claims.jti)
            .filter(|(_, at)| at.elapsed() < self.ttl);
        let active = match cached {
            Some((active, _)) => active,
            None => {
                let active = self.introspect(token, claims).await?;
                self.answers
                    .insert(claims.jti.clone(), (active, Instant::now()));
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(VerifyError::Inactive)
        }
    }

    async fn introspect(&self, token: &str, claims: &Claims) -> Result<bool, VerifyError> {
        let failed = VerifyError::Introspection;
        let response = self
            .http
            .post(&self.endpoint)
            .basic_auth(&self.basic_user, Some(self.basic_password.as_str()))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.status().is_success() {
            return Err(failed(format!("status {}", response.status())));
        }
        let answer: Introspection = response.json().await.map_err(|e| failed(e.to_string()))?;
        // An active answer about some other token would be a confused issuer.
        Ok(answer.active && answer.jti.as_deref().is_none_or(|jti| jti == claims.jti))
    }
}
