//! What every grant ends with once the key is known and usable: the
//! audience and scope chosen, the key's issuance limit applied, its use
//! recorded, the RFC 9068 access token signed (client credentials in
//! [`super::token`], the token exchange in [`super::exchange`]).

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::http::header::USER_AGENT;
use chrono::Utc;
use keygate_verifier::Claims;
use serde_json::json;

use crate::audit::{self, Action};
use crate::error::StoreError;
use crate::federation;
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::keys::issuance::Admission;
use crate::keys::last_use::LastUse;
use crate::keys::{self, Credential, UseSite};
use crate::scope::{self, ScopeSet};
use crate::state::AppState;
use crate::token::{audience_scopes, choose_audience, grant_scope};

/// The `scope` (if given) and every `resource` and `audience` (its alias)
/// of a grant request (RFC 6749 §3.3, RFC 8707 §2, RFC 8693 §2.1).
pub fn asked(form: &Form) -> Result<(Option<ScopeSet>, Vec<String>), OAuthError> {
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
    Ok((scope, resources))
}

/// What a usable key asked for, whatever the grant type.
pub struct Grant<'a> {
    pub scope: Option<ScopeSet>,
    pub resources: &'a [String],
    pub now: chrono::DateTime<Utc>,
    pub from: Option<IpAddr>,
    /// For a token exchange: the external token's `iss sub`, recorded as
    /// the key's `last_used_by`.
    pub used_by: Option<String>,
}

/// The token response (RFC 6749 §5.1) for a usable key: the audience and
/// scope chosen, the issuance limit applied, the use recorded, the token
/// signed.
pub async fn answer(
    req: &HttpRequest,
    state: &AppState,
    client: &Credential,
    grant: Grant<'_>,
) -> Result<serde_json::Value, OAuthError> {
    let Grant {
        scope,
        resources,
        now,
        from,
        used_by,
    } = grant;
    let asked: Vec<&str> = resources.iter().map(String::as_str).collect();
    let holds_own_scopes = client.effective_scopes.iter().any(scope::is_builtin);
    let audience = choose_audience(
        &asked,
        &client.audiences.to_vec(),
        holds_own_scopes,
        &state.issuer,
    )?;
    let defined = audience_scopes(&audience, &state.issuer, &client.audience_scopes);
    let scope = grant_scope(scope, &client.effective_scopes, &audience, &defined)?;
    if let Some(limit) = client.max_tokens_per_minute {
        admit(state, client, limit, from, now).await?;
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
        record_use(state, &client.key_id, site, used_by, now);
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

    Ok(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": claims.scope,
    }))
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
fn record_use(
    state: &AppState,
    key_id: &str,
    site: UseSite,
    used_by: Option<String>,
    now: chrono::DateTime<Utc>,
) {
    let (pool, key_id) = (state.pool.clone(), key_id.to_owned());
    tokio::task::spawn_blocking(move || {
        let touched = pool.get().map_err(StoreError::from).and_then(|mut conn| {
            keys::touch_last_used(&mut conn, &key_id, &site, now)?;
            if let Some(by) = used_by {
                federation::record_last_user(&mut conn, &key_id, &by)?;
            }
            Ok::<_, StoreError>(())
        });
        match touched {
            // An outage is the pool's to report, once (`crate::db::reachability`);
            // the last use is best effort.
            Err(error @ StoreError::Unavailable(_)) => {
                tracing::debug!(%error, "could not record a key's last use");
            }
            Err(error) => tracing::warn!(%error, "could not record a key's last use"),
            Ok(()) => {}
        }
    });
}
