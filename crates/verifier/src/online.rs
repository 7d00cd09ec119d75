//! Online mode: confirming a token through the issuer's introspection
//! endpoint (RFC 7662), answers cached briefly by `jti`.

use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use super::claims::Claims;
use super::clock::Clock;
use super::error::VerifyError;

const CACHE_CAPACITY: usize = 100_000;

pub(super) struct Online {
    http: reqwest::Client,
    endpoint: String,
    /// RFC 6749 §2.3.1: form-urlencoded before Basic encoding.
    basic_user: String,
    basic_password: Zeroizing<String>,
    ttl: Duration,
    /// By `jti`: whether the issuer said active, and when.
    answers: quick_cache::sync::Cache<String, (bool, Instant)>,
    clock: Clock,
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
        clock: Clock,
    ) -> Self {
        Self {
            http,
            endpoint,
            basic_user: form_encode(&client_id),
            basic_password: Zeroizing::new(form_encode(&client_secret)),
            ttl,
            answers: quick_cache::sync::Cache::new(CACHE_CAPACITY),
            clock,
        }
    }

    /// Ok when the issuer says the token is active (or said so within the
    /// cache lifetime).
    pub(super) async fn confirm(&self, token: &str, claims: &Claims) -> Result<(), VerifyError> {
        let active = match self.cached(&claims.jti) {
            Some(active) => active,
            None => {
                let active = self.introspect(token, claims).await?;
                self.remember(&claims.jti, active);
                active
            }
        };
        if active {
            Ok(())
        } else {
            Err(VerifyError::Inactive)
        }
    }

    /// The issuer's answer about `jti`, if given less than the TTL ago.
    fn cached(&self, jti: &str) -> Option<bool> {
        let now = self.clock.now();
        self.answers
            .get(jti)
            .filter(|(_, at)| now.duration_since(*at) < self.ttl)
            .map(|(active, _)| active)
    }

    fn remember(&self, jti: &str, active: bool) {
        self.answers
            .insert(jti.to_owned(), (active, self.clock.now()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const TTL: Duration = Duration::from_secs(10);

    /// Online mode against an endpoint nothing listens on: any question to
    /// the issuer fails, so a success can only come from the cache.
    fn offline_online(clock: &ManualClock) -> Online {
        Online::new(
            reqwest::Client::new(),
            "http://127.0.0.1:9/oauth/introspect".into(),
            "kgc_rs".into(),
            Zeroizing::new("secret".into()),
            TTL,
            Clock::Manual(clock.clone()),
        )
    }

    fn claims(jti: &str) -> Claims {
        Claims {
            iss: "https://auth.example.com".into(),
            sub: "kgc_1".into(),
            aud: vec!["https://api.example.com".into()],
            client_id: "kgc_1".into(),
            scope: "read".into(),
            iat: 0,
            exp: 900,
            nbf: None,
            jti: jti.into(),
        }
    }

    #[test]
    fn an_answer_is_reused_until_the_ttl_then_forgotten() {
        let clock = ManualClock::new();
        let online = offline_online(&clock);
        assert_eq!(online.cached("a"), None);
        online.remember("a", true);
        online.remember("b", false);
        clock.advance(TTL - Duration::from_millis(1));
        assert_eq!(online.cached("a"), Some(true));
        assert_eq!(online.cached("b"), Some(false));
        clock.advance(Duration::from_millis(1));
        assert_eq!(online.cached("a"), None);
        assert_eq!(online.cached("b"), None);
        online.remember("a", false);
        assert_eq!(online.cached("a"), Some(false));
    }

    #[tokio::test]
    async fn confirm_answers_from_the_cache_within_the_ttl_and_asks_after() {
        let clock = ManualClock::new();
        let online = offline_online(&clock);
        online.remember("active", true);
        online.remember("revoked", false);
        clock.advance(TTL / 2);
        assert_eq!(online.confirm("t1", &claims("active")).await, Ok(()));
        assert_eq!(
            online.confirm("t2", &claims("revoked")).await,
            Err(VerifyError::Inactive)
        );
        clock.advance(TTL / 2);
        // Past the TTL the issuer is asked again, and it is unreachable.
        assert!(matches!(
            online.confirm("t1", &claims("active")).await,
            Err(VerifyError::Introspection(_))
        ));
        // A failed question leaves nothing in the cache.
        assert_eq!(online.cached("active"), None);
    }
}
