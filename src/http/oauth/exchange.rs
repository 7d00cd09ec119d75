//! The token exchange of a federated key (RFC 8693 §2): a workload sends
//! its platform's JWT as `subject_token` with its federated key's
//! `client_id` and no secret; when the token passes the federation's rule
//! ([`crate::federation::verify`]) and the key is usable, it gets the
//! access token a client-credentials grant of that key would get, plus
//! `issued_token_type`.
//!
//! Every refusal of the subject token is the same 400 `invalid_grant`
//! ("subject token not accepted"); the audit log says why
//! (`federation.exchange_refused`). An unknown client ID, a key that is not
//! a federation's, or a revoked, expired or disabled one is `invalid_client`
//! as for client credentials. Failures of both kinds count against the
//! same throttle as client authentication (per client ID and address).

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::grant::{Grant, answer, asked};
use crate::audit::{self, Action};
use crate::client_auth::AuthFailure;
use crate::federation::{self, Rule, verify};
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::http::oauth::{self, Params};
use crate::http::peer;
use crate::keys::{self, AuthMethod, ClientId, Credential};
use crate::scope::ScopeSet;
use crate::state::AppState;
use crate::text;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The one description of every refused subject token.
pub const NOT_ACCEPTED: &str = "subject token not accepted";

/// Parameters that may appear at most once.
const SINGLE: &[&str] = &[
    "grant_type",
    "client_id",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "actor_token",
    "actor_token_type",
    "scope",
];

/// Whether the request asks for a token exchange (a form that cannot be
/// read is left to the client-credentials path, which says why).
pub fn wanted(req: &HttpRequest, body: &[u8]) -> bool {
    Form::from_request(req, body)
        .ok()
        .and_then(|form| form.single("grant_type").ok().flatten().map(str::to_owned))
        .is_some_and(|grant| grant == GRANT_TYPE)
}

/// A client that authenticated (with a secret) asking for an exchange:
/// only a federated key may exchange, and it has no secret.
struct NotFederated;

impl Params for NotFederated {
    const SINGLE: &'static [&'static str] = SINGLE;

    fn from_form(_: &Form) -> Result<Self, OAuthError> {
        Err(OAuthError::UnauthorizedClient(
            "only a federated key may use the token exchange".into(),
        ))
    }
}

/// The exchange's own parameters.
struct ExchangeRequest<'a> {
    client_id: &'a str,
    subject_token: &'a str,
    scope: Option<ScopeSet>,
    resources: Vec<String>,
}

fn read(form: &Form) -> Result<ExchangeRequest<'_>, OAuthError> {
    let client_id = form.single("client_id")?.ok_or(OAuthError::InvalidClient)?;
    let subject_token = form.required("subject_token")?;
    match form.required("subject_token_type")? {
        TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN => {}
        other => {
            return Err(OAuthError::InvalidRequest(format!(
                "subject_token_type {:?} is not supported; use {TOKEN_TYPE_JWT}",
                text::redact_secret(other)
            )));
        }
    }
    if let Some(asked) = form.single("requested_token_type")?
        && asked != TOKEN_TYPE_ACCESS_TOKEN
    {
        return Err(OAuthError::InvalidRequest(format!(
            "requested_token_type: only {TOKEN_TYPE_ACCESS_TOKEN} is issued"
        )));
    }
    if form.single("actor_token")?.is_some() {
        return Err(OAuthError::InvalidRequest(
            "actor_token (delegation) is not supported".into(),
        ));
    }
    let (scope, resources) = asked(form)?;
    Ok(ExchangeRequest {
        client_id,
        subject_token,
        scope,
        resources,
    })
}

/// A federated key's credential and its federation (name and rule).
type Federated = (Credential, String, Rule);

pub async fn exchange(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
) -> Result<Value, OAuthError> {
    let form = Form::from_request(req, body)?;
    form.reject_repeats(SINGLE)?;
    let presents_credentials = req.headers().contains_key(AUTHORIZATION)
        || form.single("client_secret")?.is_some()
        || form.single("client_assertion")?.is_some();
    if presents_credentials {
        // Authenticated as any key: refused there (a federated key has no
        // secret) or here (it is not a federated key).
        oauth::accept::<NotFederated>(req, body, state).await?;
        return Err(NotFederated::from_form(&form)
            .err()
            .unwrap_or(OAuthError::InvalidClient));
    }
    let metrics = &state.client_auth.metrics;
    let request = read(&form).inspect_err(|e| {
        if matches!(e, OAuthError::InvalidClient) {
            metrics.count_failure(AuthFailure::NoClientAuthentication.as_str());
        }
    })?;
    let now = state.clock.now();
    let from = peer::client_ip(req, &state.client_auth.trusted_proxies);
    let addr = from.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let presented_id = text::redact_secret(request.client_id);
    let Some(client_id) = ClientId::parse(&presented_id) else {
        metrics.count_failure(AuthFailure::MalformedClientId.as_str());
        return Err(OAuthError::InvalidClient);
    };

    let (throttled, found) = {
        let (id, at, throttle) = (client_id.clone(), addr.clone(), state.client_auth.throttle);
        state
            .db(move |conn| -> Result<_, OAuthError> {
                let throttled = throttle.retry_after(conn, id.as_str(), &at, now)?;
                if throttled.is_some() {
                    return Ok((throttled, None));
                }
                let Some(credential) = keys::find_credential(conn, &id)? else {
                    return Ok((None, None));
                };
                let rule = match credential.auth_method {
                    AuthMethod::Federation => federation::rule_of_key(conn, &credential.key_id)?,
                    AuthMethod::ClientSecret | AuthMethod::PrivateKeyJwt => None,
                };
                Ok((None, Some((credential, rule))))
            })
            .await?
    };
    if let Some(retry_after_secs) = throttled {
        metrics.count_failure(AuthFailure::Throttled.as_str());
        return Err(OAuthError::TooManyRequests { retry_after_secs });
    }
    let (credential, name, rule): Federated = match found {
        Some((credential, Some((name, rule)))) => (credential, name, rule),
        Some((_, None)) => {
            refuse_client(state, &client_id, &addr, AuthFailure::WrongAuthMethod, now).await;
            return Err(OAuthError::InvalidClient);
        }
        None => {
            refuse_client(state, &client_id, &addr, AuthFailure::UnknownClient, now).await;
            return Err(OAuthError::InvalidClient);
        }
    };

    let claimed =
        match verify::check(&state.federation_keys, &rule, request.subject_token, now).await {
            Ok(claimed) => claimed,
            Err((rejection, claimed)) => {
                let refusal = Refused {
                    client_id: &client_id,
                    federation: &name,
                    addr: &addr,
                    reason: rejection.reason(),
                    claimed,
                };
                refuse_token(state, refusal, now).await;
                return Err(OAuthError::InvalidGrant(NOT_ACCEPTED.into()));
            }
        };
    if let Some(refusal) = credential.refusal_from(from, now) {
        let failure = AuthFailure::Refused(refusal);
        refuse_client(state, &client_id, &addr, failure, now).await;
        return Err(OAuthError::InvalidClient);
    }
    let used_by = format!(
        "{} {}",
        claimed.iss.unwrap_or_default(),
        claimed.sub.unwrap_or_default()
    );
    let grant = Grant {
        scope: request.scope,
        resources: &request.resources,
        now,
        from,
        used_by: Some(used_by),
    };
    let mut token = answer(req, state, &credential, grant).await?;
    token["issued_token_type"] = TOKEN_TYPE_ACCESS_TOKEN.into();
    Ok(token)
}

/// A client ID that may not exchange: counted, throttled and audited like
/// a failed client authentication.
async fn refuse_client(
    state: &AppState,
    client_id: &ClientId,
    addr: &str,
    failure: AuthFailure,
    now: DateTime<Utc>,
) {
    let reason = failure.as_str();
    state.client_auth.metrics.count_failure(reason);
    tracing::info!(client_id = %client_id, addr, reason, "token exchange: client refused");
    let details = json!({ "reason": reason, "grant_type": GRANT_TYPE });
    record(
        state,
        client_id,
        addr,
        Action::ClientAuthFailed,
        details,
        now,
    )
    .await;
}

/// A subject token that was not accepted, as the audit log records it.
struct Refused<'a> {
    client_id: &'a ClientId,
    federation: &'a str,
    addr: &'a str,
    reason: String,
    claimed: verify::Claimed,
}

async fn refuse_token(state: &AppState, refused: Refused<'_>, now: DateTime<Utc>) {
    let Refused {
        client_id,
        federation,
        addr,
        reason,
        claimed,
    } = refused;
    tracing::info!(client_id = %client_id, addr, %reason, "token exchange: subject token refused");
    // What the token claims, never the token; unverified unless its
    // signature verified.
    let details = json!({
        "federation": federation,
        "reason": reason,
        "iss": claimed.iss,
        "sub": claimed.sub,
        "verified": claimed.verified,
    });
    record(
        state,
        client_id,
        addr,
        Action::FederationExchangeRefused,
        details,
        now,
    )
    .await;
}

/// One failure counted by the throttle, and its audit event.
async fn record(
    state: &AppState,
    client_id: &ClientId,
    addr: &str,
    action: Action,
    details: Value,
    now: DateTime<Utc>,
) {
    let (client_id, addr, throttle) = (
        client_id.to_string(),
        addr.to_owned(),
        state.client_auth.throttle,
    );
    let written = state
        .db(move |conn| -> Result<(), OAuthError> {
            throttle.record_failure(conn, &client_id, &addr, now)?;
            audit::record(
                conn,
                now,
                audit::Entry {
                    actor: &client_id,
                    action,
                    target: &client_id,
                    source_addr: Some(&addr),
                    details,
                },
            )?;
            Ok(())
        })
        .await;
    if let Err(error) = written {
        tracing::error!(%error, "could not record a refused token exchange");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
    }

    #[test]
    fn reads_an_exchange_as_rfc_8693_says() {
        let base = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&client_id=kgc_x&subject_token=a.b.c";
        let ok = form(&format!(
            "{base}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&scope=read&resource=https%3A%2F%2Fa"
        ));
        let request = read(&ok).unwrap();
        assert_eq!(request.client_id, "kgc_x");
        assert_eq!(request.subject_token, "a.b.c");
        assert_eq!(request.resources, ["https://a"]);
        let id_token = form(&format!(
            "{base}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aid_token"
        ));
        assert!(read(&id_token).is_ok());
        let saml = form(&format!(
            "{base}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Asaml2"
        ));
        assert!(matches!(read(&saml), Err(OAuthError::InvalidRequest(_))));
        assert!(matches!(
            read(&form(base)),
            Err(OAuthError::InvalidRequest(_))
        ));
        let no_client = form(
            "subject_token=a&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt",
        );
        assert!(matches!(read(&no_client), Err(OAuthError::InvalidClient)));
    }
}
