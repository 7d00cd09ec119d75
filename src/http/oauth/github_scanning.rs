//! `POST /integrations/github/secret-scanning`: GitHub's secret scanning
//! partner program reports keygate secrets it found in public code, and
//! each live one's key is revoked as `POST /oauth/exposed` would.
//!
//! GitHub signs the raw body (see [`super::github_keys`]); anything not
//! signed by a key of `KEYGATE_GITHUB_SCANNING_KEYS` is 401 before the body
//! is read as JSON, and changes nothing. The body is
//! `[{"token", "type", "url", "source"}]`; the answer labels each match
//! `true_positive` when it is a secret this keygate issued (GitHub's
//! feedback on how precise the pattern is), and `false_positive` otherwise
//! (not a keygate secret, a wrong checksum, a secret of no key). A live one
//! (current secret, or previous within its grace) is revoked; one whose key
//! is already dead (revoked by an earlier alert, expired, rotated away)
//! changes nothing and is still `true_positive`, so a second alert for the
//! same secret is answered alike and revokes and emails nothing more. (A
//! previous secret of a key revoked since cannot be checked any more: a
//! revocation drops its hash, so it is `false_positive`.)
//!
//! Without the variable the route is not registered: 404 like any unknown
//! path (`crate::app`).

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::exposed;
use crate::exposure::github_keys::{GithubKeys, SignatureError};
use crate::exposure::{
    Candidate, MAX_SOURCE_LEN, find_candidate, find_issued, first_occurrences, parse_source,
};
use crate::http::error::OAuthError;
use crate::http::oauth;
use crate::http::peer;
use crate::keys::{ClientId, Exposure, PlainSecret};
use crate::state::AppState;

/// Where GitHub posts, as registered with its partner program.
pub const PATH: &str = "/integrations/github/secret-scanning";
/// Most matches one request may carry. GitHub batches matches and asks
/// partners to take "a large number" without timing out; each costs one
/// indexed lookup, and argon2 (~16 ms on the bounded pool) only when its
/// lookup tag found a live key, which only a real live secret does. A
/// thousand lookups take well under a second on either engine.
pub const MAX_MATCHES: usize = 1000;
/// Largest body: a thousand matches of GitHub's size (a token, a type
/// name, a commit URL) with room to spare.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// What every revocation reason from here starts with.
const SOURCE_PREFIX: &str = "GitHub secret scanning";

/// Registered only when `KEYGATE_GITHUB_SCANNING_KEYS` is set, with the
/// keys as app data.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/integrations/github")
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .service(oauth::post_only("/secret-scanning", alert)),
    );
}

/// One match as GitHub sends it. Fields GitHub may add are ignored.
#[derive(Deserialize)]
struct Match {
    token: String,
    #[serde(rename = "type", default)]
    token_type: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// One label of the answer, in the order of the matches. `token_raw`
/// echoes the token to GitHub, the signed caller that sent it, as its
/// partner API asks; it is never logged.
#[derive(Serialize)]
struct Label<'a> {
    token_raw: &'a str,
    token_type: &'a str,
    label: &'static str,
}

#[derive(Debug, thiserror::Error)]
enum AlertError {
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
}

impl From<actix_web::error::BlockingError> for AlertError {
    fn from(error: actix_web::error::BlockingError) -> Self {
        Self::OAuth(error.into())
    }
}

impl ResponseError for AlertError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            Self::OAuth(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Signature(error) => {
                tracing::info!(reason = %error, "refused a GitHub secret-scanning alert");
                HttpResponse::Unauthorized()
                    .insert_header((
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Github-Public-Key-Signature"),
                    ))
                    .json(json!({
                        "error": "invalid_signature",
                        "error_description": error.to_string(),
                    }))
            }
            Self::OAuth(error) => error.error_response(),
        }
    }
}

async fn alert(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    keys: web::Data<GithubKeys>,
) -> HttpResponse {
    match handle(&req, body, &state, keys.into_inner()).await {
        Ok(answer) => answer,
        Err(error) => error.error_response(),
    }
}

async fn handle(
    req: &HttpRequest,
    body: web::Bytes,
    state: &AppState,
    keys: Arc<GithubKeys>,
) -> Result<HttpResponse, AlertError> {
    let now = state.clock.now();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(identifier), Some(signature)) = (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) else {
        return Err(SignatureError::MissingHeaders.into());
    };
    let signed = body.clone();
    web::block(move || keys.verify(&identifier, &signature, &signed)).await??;

    let matches = parse_matches(&body)?;
    let addr = peer::client_address(req, &state.client_auth.trusted_proxies);
    let (items, first_of) = distinct(matches);
    let genuine = check_all(state, &items, &first_of, (&addr, now)).await?;

    let labels: Vec<Label<'_>> = items
        .iter()
        .zip(&first_of)
        .map(|(item, first)| Label {
            token_raw: item.secret.expose(),
            token_type: &item.token_type,
            label: if genuine[*first] {
                "true_positive"
            } else {
                "false_positive"
            },
        })
        .collect();
    tracing::info!(
        matches = labels.len(),
        true_positive = first_of.iter().filter(|first| genuine[**first]).count(),
        "handled a GitHub secret-scanning alert"
    );
    Ok(HttpResponse::Ok().json(labels))
}

/// The body as GitHub's list of matches; anything else is 400 with a fixed
/// message (serde's would quote the body, tokens included).
fn parse_matches(body: &[u8]) -> Result<Vec<Match>, OAuthError> {
    let matches: Vec<Match> = serde_json::from_slice(body).map_err(|_| {
        OAuthError::InvalidRequest(
            "the body must be a JSON array of {\"token\", \"type\", \"url\", \"source\"} objects"
                .into(),
        )
    })?;
    if matches.len() > MAX_MATCHES {
        return Err(OAuthError::InvalidRequest(format!(
            "an alert may hold at most {MAX_MATCHES} matches"
        )));
    }
    Ok(matches)
}

/// One match, its token a secret from here on.
struct Item {
    secret: PlainSecret,
    token_type: String,
    source: String,
}

/// The matches, their tokens secrets from here on, and for each the index
/// of the first match with the same token: a token GitHub found twice in
/// one alert is looked up once and gets one label.
fn distinct(matches: Vec<Match>) -> (Vec<Item>, Vec<usize>) {
    let items: Vec<Item> = matches
        .into_iter()
        .map(|m| Item {
            source: github_source(m.source.as_deref(), m.url.as_deref(), &m.token),
            secret: PlainSecret::from_presented(m.token),
            token_type: m.token_type.unwrap_or_default(),
        })
        .collect();
    let first_of = first_occurrences(items.iter().map(|item| &item.secret));
    (items, first_of)
}

/// Where GitHub says it found the token, as a revocation reason's source:
/// `GitHub secret scanning: <source> <url>`, control characters and
/// bidirectional controls dropped, cut to the source's limit. The URL is
/// public (where the leak is); were the token in it, it is left out.
fn github_source(source: Option<&str>, url: Option<&str>, token: &str) -> String {
    let clean = |text: Option<&str>| -> String {
        let text: String = text
            .unwrap_or_default()
            .chars()
            .filter(|c| !crate::text::is_refused(*c))
            .collect();
        let text = text.trim();
        if !token.is_empty() && text.contains(token) {
            String::new()
        } else {
            text.to_owned()
        }
    };
    let mut text = format!("{SOURCE_PREFIX}: {} {}", clean(source), clean(url));
    if text.len() > MAX_SOURCE_LEN {
        let mut cut = MAX_SOURCE_LEN - '…'.len_utf8();
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    parse_source(Some(text.trim().trim_end_matches(':')))
        .unwrap_or_else(|_| SOURCE_PREFIX.to_owned())
}

/// For each match that is the first with its token: whether the token is a
/// secret this keygate issued; a live one's key is revoked (`false` for the
/// others, which are answered by their first). One database call looks up
/// every token, among live keys and then, for the rest, among all; argon2
/// runs on the bounded pool, only for tokens whose tag found a key: GitHub
/// is told each answer anyway, so there is no timing to keep even.
async fn check_all(
    state: &AppState,
    items: &[Item],
    first_of: &[usize],
    (addr, now): (&str, DateTime<Utc>),
) -> Result<Vec<bool>, AlertError> {
    let tagger = state.accounts.token_hasher.clone();
    let firsts: Vec<usize> = (0..items.len()).filter(|i| first_of[*i] == *i).collect();
    let secrets: Vec<PlainSecret> = firsts
        .iter()
        .map(|i| PlainSecret::from_presented(items[*i].secret.expose().to_owned()))
        .collect();
    let candidates: Vec<(Candidate, Candidate, PlainSecret)> = state
        .db(move |conn| -> Result<_, OAuthError> {
            let mut found = Vec::with_capacity(secrets.len());
            for secret in secrets {
                let live = find_candidate(conn, &tagger, &secret, now)?;
                let issued = if live.client_id().is_some() {
                    Candidate::none()
                } else {
                    find_issued(conn, &tagger, &secret)?
                };
                found.push((live, issued, secret));
            }
            Ok(found)
        })
        .await?;
    let mut genuine = vec![false; items.len()];
    for ((live, issued, secret), i) in candidates.into_iter().zip(firsts) {
        let (live_key, secret) = verified_key(state, live, secret).await?;
        if let Some(client_id) = live_key {
            let exposure = Exposure {
                source: &items[i].source,
                reported_from: Some(addr),
            };
            revoke_reported(state, client_id, exposure, now).await?;
            genuine[i] = true;
        } else {
            genuine[i] = verified_key(state, issued, secret).await?.0.is_some();
        }
    }
    Ok(genuine)
}

/// The client ID of the key `secret` verified against, if any, and the
/// secret back for another check.
async fn verified_key(
    state: &AppState,
    candidate: Candidate,
    secret: PlainSecret,
) -> Result<(Option<ClientId>, PlainSecret), AlertError> {
    if candidate.client_id().is_none() {
        return Ok((None, secret));
    }
    let (matched, candidate, secret) = state
        .client_auth
        .argon2
        .run(move || {
            let matched = candidate.verify(&secret);
            (matched, candidate, secret)
        })
        .await
        .map_err(|e| OAuthError::ServerError(e.to_string()))?;
    Ok((candidate.client_id().filter(|_| matched).cloned(), secret))
}

/// Revokes the key (once: a key revoked meanwhile is left as it is). A
/// failure is a 5xx, so GitHub sends the alert again.
async fn revoke_reported(
    state: &AppState,
    client_id: ClientId,
    exposure: Exposure<'_>,
    now: DateTime<Utc>,
) -> Result<(), AlertError> {
    exposed::revoke_reported(state, client_id, exposure, now)
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not revoke a key whose secret GitHub reported");
            OAuthError::ServerError(error.to_string())
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(token: &str, token_type: &str) -> Match {
        Match {
            token: token.into(),
            token_type: Some(token_type.into()),
            url: None,
            source: Some("content".into()),
        }
    }

    #[test]
    fn a_repeated_token_points_to_its_first_match() {
        let matches = vec![
            one("a", "t1"),
            one("b", "t2"),
            one("a", "t3"),
            one("c", "t4"),
        ];
        let (items, first_of) = distinct(matches);
        assert_eq!(first_of, [0, 1, 0, 3]);
        let answered: Vec<(&str, &str)> = items
            .iter()
            .map(|i| (i.secret.expose(), i.token_type.as_str()))
            .collect();
        assert_eq!(
            answered,
            [("a", "t1"), ("b", "t2"), ("a", "t3"), ("c", "t4")]
        );
    }

    #[test]
    fn the_source_names_github_where_and_never_the_token() {
        assert_eq!(
            github_source(
                Some("commit"),
                Some("https://github.com/o/r/commit/abc"),
                "kgs_x"
            ),
            "GitHub secret scanning: commit https://github.com/o/r/commit/abc"
        );
        assert_eq!(
            github_source(None, Some(""), "kgs_x"),
            "GitHub secret scanning"
        );
        assert_eq!(
            github_source(Some("content\n"), Some("https://x/?t=kgs_x"), "kgs_x"),
            "GitHub secret scanning: content"
        );
        assert_eq!(
            github_source(Some("con\u{202E}tent"), None, "kgs_x"),
            "GitHub secret scanning: content"
        );
        let long = format!("https://github.com/{}", "é".repeat(300));
        let cut = github_source(Some("content"), Some(&long), "kgs_x");
        assert!(cut.len() <= MAX_SOURCE_LEN && cut.ends_with('…'), "{cut}");
        assert!(parse_source(Some(&cut)).is_ok());
    }
}
