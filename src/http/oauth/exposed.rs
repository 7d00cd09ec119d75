//! `POST /oauth/exposed`: anyone holding a keygate secret reports it
//! leaked, and its key is revoked. The body is a JSON array of strings, the
//! optional `source` query parameter says where they were found. The answer
//! is `202 {"received": N}` whether or not anything matched, N the distinct
//! strings (a string repeated within one report counts once); every request
//! counts against its address's throttle, matched or not. A string costs
//! one indexed lookup; only one whose lookup tag finds a key costs an
//! argon2 verification, within this process's budget per minute
//! (`crate::exposure::budget`): past it the report is 429, nothing done.
//! One report at a time does its throttle check and lookups in a process
//! (`AppState::exposure_turn`), so a flood cannot take every connection.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::exposure::{self, find_candidate, parse_source};
use crate::http::error::OAuthError;
use crate::http::oauth;
use crate::http::peer;
use crate::keys::{self, Caller, ClientId, Exposure, Key, KeyError, PlainSecret};
use crate::state::AppState;

/// Most strings one report may carry.
pub const MAX_SECRETS: usize = 100;
/// The throttle's subject, counted per address (`client_auth::throttle`).
const THROTTLE_SUBJECT: &str = "exposed:";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(oauth::post_only("/oauth/exposed", report));
}

#[derive(Deserialize)]
struct ReportQuery {
    source: Option<String>,
}

async fn report(req: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    match handle(&req, &body, &state).await {
        Ok(received) => HttpResponse::Accepted().json(json!({ "received": received })),
        Err(error) => error.error_response(),
    }
}

async fn handle(req: &HttpRequest, body: &[u8], state: &AppState) -> Result<usize, OAuthError> {
    let addr = peer::client_address(req, &state.client_auth.trusted_proxies);
    // Its throttle and its lookups wait for the reports before it, so
    // that a flood from many addresses never holds more than one database
    // connection; the argon2 of a hit comes after, within the budget.
    let turn = state
        .exposure_turn
        .acquire()
        .await
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    let now = state.clock.now();
    throttle(state, addr.clone(), now).await?;

    let query = web::Query::<ReportQuery>::from_query(req.query_string())
        .map_err(|_| OAuthError::InvalidRequest("the query string could not be read".into()))?;
    let source = parse_source(query.source.as_deref()).map_err(OAuthError::InvalidRequest)?;
    let strings: Vec<String> = serde_json::from_slice(body).map_err(|_| {
        OAuthError::InvalidRequest("the body must be a JSON array of strings".into())
    })?;
    if strings.len() > MAX_SECRETS {
        return Err(OAuthError::InvalidRequest(format!(
            "a report may hold at most {MAX_SECRETS} strings"
        )));
    }
    // A string repeated within the report counts once: one lookup, one
    // verification, and once in the answer.
    let secrets = exposure::distinct(
        strings
            .into_iter()
            .map(PlainSecret::from_presented)
            .collect(),
    );
    let received = secrets.len();
    let tagger = state.accounts.token_hasher.clone();
    let hits = state
        .db(move |conn| -> Result<_, OAuthError> {
            let mut hits = Vec::new();
            for secret in secrets {
                let candidate = find_candidate(conn, &tagger, &secret, now)?;
                if candidate.is_hit() {
                    hits.push((candidate, secret));
                }
            }
            Ok(hits)
        })
        .await?;
    drop(turn);
    let verifications = u32::try_from(hits.len()).unwrap_or(u32::MAX);
    if let Err(retry_after_secs) = state.exposure_budget.take(verifications, now) {
        tracing::warn!(
            verifications,
            "leak reports: this minute's argon2 budget is spent; report refused with 429"
        );
        return Err(OAuthError::TooManyRequests { retry_after_secs });
    }
    for (candidate, secret) in hits {
        check_one(state, candidate, secret, (&source, &addr), now).await?;
    }
    Ok(received)
}

/// 429 once the address has made too many reports in the window; counts
/// this one otherwise.
async fn throttle(state: &AppState, addr: String, now: DateTime<Utc>) -> Result<(), OAuthError> {
    let policy = state.client_auth.throttle;
    // A short write: on SQLite it waits for its turn among this process's
    // writers without holding a connection, instead of sleeping in SQLite's
    // busy handler on one that token requests need.
    let throttled = state
        .pool
        .write(move |conn| -> Result<_, OAuthError> {
            let throttled = policy.retry_after(conn, THROTTLE_SUBJECT, &addr, now)?;
            if throttled.is_none() {
                policy.record_attempt(conn, THROTTLE_SUBJECT, &addr, now)?;
            }
            Ok(throttled)
        })
        .await?;
    match throttled {
        Some(retry_after_secs) => Err(OAuthError::TooManyRequests { retry_after_secs }),
        None => Ok(()),
    }
}

/// One argon2 verification on the bounded pool for a string whose tag
/// found a key; a revocation when it is that key's live secret. A
/// revocation that fails is logged, not answered: the answer must not tell
/// a match.
async fn check_one(
    state: &AppState,
    candidate: exposure::Candidate,
    secret: PlainSecret,
    (source, addr): (&str, &str),
    now: DateTime<Utc>,
) -> Result<(), OAuthError> {
    let matched = {
        let (matched, candidate) = state
            .client_auth
            .argon2
            .run(move || (candidate.verify(&secret), candidate))
            .await
            .map_err(|e| OAuthError::ServerError(e.to_string()))?;
        candidate.client_id().filter(|_| matched).cloned()
    };
    let Some(client_id) = matched else {
        return Ok(());
    };
    let exposure = Exposure {
        source,
        reported_from: Some(addr),
    };
    let revoked = revoke_reported(state, client_id, exposure, now).await;
    if let Err(error) = revoked {
        tracing::error!(%error, "could not revoke a key whose secret was reported exposed");
    }
    Ok(())
}

/// [`exposure::revoke`] on the blocking pool, by keygate itself, for a report whose
/// secret verified against the key `client_id`.
pub(super) async fn revoke_reported(
    state: &AppState,
    client_id: ClientId,
    exposure: Exposure<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Key>, KeyError> {
    let service = keys::Service::new(state.issuer.clone(), state.key_limits());
    let source = exposure.source.to_owned();
    let reported_from = exposure.reported_from.map(str::to_owned);
    state
        .db(move |conn| {
            let exposure = Exposure {
                source: &source,
                reported_from: reported_from.as_deref(),
            };
            exposure::revoke(
                conn,
                (&service, &Caller::Keygate),
                &client_id,
                exposure,
                now,
            )
        })
        .await
}
