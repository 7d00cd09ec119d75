//! `POST /oauth/token`: the client-credentials grant (RFC 6749 §4.4) issuing
//! RFC 9068 JWT access tokens.

use std::net::IpAddr;
use std::time::Instant;

use actix_web::http::header::USER_AGENT;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use keygate_verifier::Claims;
use serde_json::json;

use crate::audit::{self, Action};
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::http::oauth::{self, ClientRequest, Params};
use crate::keys::issuance::Admission;
use crate::keys::last_use::LastUse;
use crate::keys::{self, Credential, UseSite};
use crate::scope::{self, ScopeSet};
use crate::state::AppState;
use crate::token::{GrantError, audience_scopes, choose_audience, grant_scope};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth::post_only("/oauth/token", token));
}

/// A client-credentials grant request (RFC 6749 §4.4.2, RFC 8707 §2).
#[derive(Debug)]
struct GrantRequest {
    /// `scope`, when given.
    scope: Option<ScopeSet>,
    /// Every `resource` and `audience` (its alias) given.
    resources: Vec<String>,
}

impl Params for GrantRequest {
    const SINGLE: &'static [&'static str] = &["grant_type", "scope"];

    fn from_form(form: &Form) -> Result<Self, OAuthError> {
        match form.required("grant_type")? {
            "client_credentials" => {}
            other => return Err(OAuthError::UnsupportedGrantType(other.to_owned())),
        }
        let scope = form
            .single("scope")?
            .map(ScopeSet::parse)
            .transpose()
            .map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
        let resources = form
            .all("resource")
            .iter()
            .chain(form.all("audience"))
            .cloned()
            .collect();
        Ok(Self { scope, resources })
    }
}

/// A grant the key cannot have (RFC 6749 §5.2, RFC 8707 §2).
impl From<GrantError> for OAuthError {
    fn from(error: GrantError) -> Self {
        match error {
            GrantError::InvalidScope(why) => Self::InvalidScope(why),
            GrantError::InvalidTarget(why) => Self::InvalidTarget(why),
        }
    }
}

async fn token(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let started = Instant::now();
    let outcome = issue(&req, &body, &state).await;
    state
        .metrics
        .token_request_duration
        .observe(started.elapsed().as_secs_f64());
    match outcome {
        Ok(response) => {
            state.metrics.tokens_issued.inc();
            response
        }
        Err(error) => {
            // Authentication failures were counted with their reason already.
            if !matches!(
                error,
                OAuthError::InvalidClient | OAuthError::TooManyRequests { .. }
            ) {
                state.metrics.count_failure(error.code());
            }
            actix_web::ResponseError::error_response(&error)
        }
    }
}

async fn issue(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<HttpResponse, OAuthError> {
    let ClientRequest {
        client,
        params,
        now,
        from,
    } = oauth::accept::<GrantRequest>(req, body, state).await?;

    let asked: Vec<&str> = params.resources.iter().map(String::as_str).collect();
    let holds_own_scopes = client.effective_scopes.iter().any(scope::is_builtin);
    let audience = choose_audience(
        &asked,
        &client.audiences.to_vec(),
        holds_own_scopes,
        &state.issuer,
    )?;
    let defined = audience_scopes(&audience, &state.issuer, &client.audience_scopes);
    let scope = grant_scope(params.scope, &client.effective_scopes, &audience, &defined)?;
    if let Some(limit) = client.max_tokens_per_minute {
        admit(state, &client, limit, from, now).await?;
    }
    let mut site = UseSite {
        from: from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
        user_agent: None,
    };
    let last = state.recent_uses.last(&client.key_id, client.last_use());
    if site.is_worth_recording(last.as_ref(), now) {
        // Cleaned only when it is written, not on every request.
        site.user_agent = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| UseSite::clean_user_agent(v.as_bytes()));
        let recorded = LastUse {
            at: now.naive_utc(),
            from: Some(site.from.clone()),
        };
        state.recent_uses.record(&client.key_id, recorded);
        record_use(state, &client.key_id, site, now);
    }

    let ring = state.signer.current();
    let signing_key = ring
        .active
        .as_ref()
        .ok_or_else(|| OAuthError::TemporarilyUnavailable("no active signing key".into()))?;
    let ttl = state.token_ttl.as_secs();
    let iat = now.timestamp();
    let claims = Claims {
        iss: state.issuer.clone(),
        sub: client.client_id.to_string(),
        aud: vec![audience],
        client_id: client.client_id.to_string(),
        scope: scope.to_string(),
        iat,
        exp: iat + ttl,
        nbf: None,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    let access_token = signing_key
        .sign_jwt(&claims)
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    tracing::debug!(client_id = %claims.client_id, kid = %signing_key.kid, "token issued");

    Ok(HttpResponse::Ok().json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": claims.scope,
    })))
}

/// Takes one token of the key's issuance limit (`keys::issuance`), or
/// refuses with 429 and `Retry-After` until the next minute. The first
/// refusal of a minute on this process is audited, with the address.
async fn admit(
    state: &AppState,
    client: &Credential,
    limit: u32,
    from: Option<IpAddr>,
    now: chrono::DateTime<Utc>,
) -> Result<(), OAuthError> {
    let admission = state
        .issuance
        .admit(&state.pool, &client.key_id, limit, now)
        .await?;
    let Admission::Limited {
        retry_after_secs,
        first,
    } = admission
    else {
        return Ok(());
    };
    state.metrics.count_failure(ISSUANCE_LIMITED);
    if first {
        let client_id = client.client_id.to_string();
        let addr = from.map(|ip| ip.to_string());
        tracing::info!(%client_id, limit, "issuance limit reached");
        state
            .db(move |conn| {
                audit::record(
                    conn,
                    now,
                    audit::Entry {
                        actor: &client_id,
                        action: Action::KeyIssuanceLimited,
                        target: &client_id,
                        source_addr: addr.as_deref(),
                        details: json!({ "max_tokens_per_minute": limit }),
                    },
                )
                .map_err(OAuthError::from)
            })
            .await?;
    }
    Err(OAuthError::TooManyRequests {
        retry_after_secs: i64::try_from(retry_after_secs).unwrap_or(60),
    })
}

/// The `reason` of `keygate_token_failures_total` for a key past its limit.
const ISSUANCE_LIMITED: &str = "issuance_limited";

/// Updates `last_used_*` in the background: the response does not wait for
/// a write, and a failure costs only the record.
fn record_use(state: &AppState, key_id: &str, site: UseSite, now: chrono::DateTime<Utc>) {
    let (pool, key_id) = (state.pool.clone(), key_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let touched = pool.get().map_err(|e| e.to_string()).and_then(|mut conn| {
            keys::touch_last_used(&mut conn, &key_id, &site, now).map_err(|e| e.to_string())
        });
        if let Err(error) = touched {
            tracing::warn!(%error, "could not record a key's last use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(body: &str) -> Result<GrantRequest, OAuthError> {
        let form = Form::parse(Some("application/x-www-form-urlencoded"), body.as_bytes())?;
        form.reject_repeats(GrantRequest::SINGLE)?;
        GrantRequest::from_form(&form)
    }

    #[test]
    fn reads_a_client_credentials_grant() {
        let request = grant("grant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fa&audience=https%3A%2F%2Fb").unwrap();
        assert_eq!(request.scope, ScopeSet::parse("read write").ok());
        assert_eq!(request.resources, ["https://a", "https://b"]);
        let bare = grant("grant_type=client_credentials").unwrap();
        assert_eq!(bare.scope, None);
        assert!(bare.resources.is_empty());
    }

    #[test]
    fn refuses_what_rfc_6749_refuses() {
        assert!(matches!(grant(""), Err(OAuthError::InvalidRequest(_))));
        assert!(matches!(
            grant("grant_type=password"),
            Err(OAuthError::UnsupportedGrantType(g)) if g == "password"
        ));
        assert!(matches!(
            grant("grant_type=client_credentials&scope=a%22b"),
            Err(OAuthError::InvalidScope(_))
        ));
        assert!(matches!(
            grant("grant_type=client_credentials&scope=a&scope=b"),
            Err(OAuthError::InvalidRequest(_))
        ));
    }
}
