//! `/keys/{client_id}`: a key's page (its facts, its activity from the
//! audit log, its usage limits), and from it rotating and revoking the key.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::secret::{Outcome, SecretAction, already_shown, once, secret_page};
use super::shared::{FieldErrors, KeyPath, caller, envelope_of, own_caller, row, service};
use crate::audit::{self, AuditEvent};
use crate::duration::HumanDuration;
use crate::http::console::{
    Current, Notice, NoticeQuery, PageError, Viewer, field, notice_for, page, posted, run,
    see_other, sentence, viewer,
};
use crate::http::error::AppError;
use crate::keys::{EnvelopeChange, Key, parse_grace};
use crate::state::AppState;

/// An audit event as the key's activity shows it.
#[derive(Debug, Serialize)]
pub(in crate::http::console) struct EventRow {
    occurred_at: String,
    action: String,
    actor: String,
    target: String,
    source_addr: Option<String>,
    summary: String,
}

pub(in crate::http::console) fn event_row(event: AuditEvent) -> EventRow {
    let details: serde_json::Value = serde_json::from_str(&event.details).unwrap_or_default();
    let summary = match details.as_object() {
        Some(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
            .map(|(k, v)| match (v.get("from"), v.get("to")) {
                // A change: what it was and what it became.
                (Some(from), Some(to)) => {
                    format!("{k}: {} → {}", summary_value(from), summary_value(to))
                }
                _ => format!("{k}: {}", summary_value(v)),
            })
            .collect::<Vec<_>>()
            .join("; "),
        None => String::new(),
    };
    EventRow {
        occurred_at: crate::time::rfc3339(crate::time::from_db(event.occurred_at)),
        action: event.action,
        actor: event.actor,
        target: event.target,
        source_addr: event.source_addr,
        summary,
    }
}

/// One value of an audit event's details in words: lists space-separated,
/// nothing as "none".
fn summary_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "none".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) if items.is_empty() => "none".to_owned(),
        serde_json::Value::Array(items) => items
            .iter()
            .map(summary_value)
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

fn grace_choices(key: &Key, now: DateTime<Utc>) -> Vec<(&'static str, &'static str)> {
    let left = key.expires_at.map(|at| at - now);
    [
        ("0", "Stop it now"),
        ("1h", "1 hour"),
        ("24h", "24 hours"),
        ("7d", "7 days"),
        ("30d", "30 days"),
    ]
    .into_iter()
    .filter(|(value, _)| {
        let grace = HumanDuration::parse_or_zero(value).ok().flatten();
        match (grace, left) {
            (Some(g), Some(left)) => g.as_chrono() <= left,
            _ => true,
        }
    })
    .collect()
}

pub(super) async fn detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let notice = notice_for(query.notice.as_deref());
    render_detail(&state, &viewer, path.into_inner().client_id, notice, None).await
}

/// What the envelope form sent and why it was refused, shown again.
#[derive(Debug, Serialize)]
struct EnvelopeRefusal {
    allowed_networks: String,
    max_tokens_per_minute: String,
    errors: FieldErrors,
}

/// What the public-keys form sent and why it was refused, shown again.
#[derive(Debug, Default, Serialize)]
struct PublicKeyRefusal {
    public_key: String,
    errors: FieldErrors,
}

/// A form of the key's page refused, shown again with its errors.
enum Refused {
    Envelope(EnvelopeRefusal),
    PublicKey(PublicKeyRefusal),
}

/// The key, if the viewer may see it; otherwise the "not found" page.
pub(super) async fn visible_key(
    state: &AppState,
    viewer: &Viewer,
    client_id: String,
) -> Result<Key, PageError> {
    let now = state.clock.now();
    let (service, caller) = (service(state), caller(viewer));
    run(state, viewer, move |conn| {
        service.get(conn, &caller, &client_id, now)
    })
    .await
}

async fn render_detail(
    state: &AppState,
    viewer: &Viewer,
    client_id: String,
    notice: Option<Notice>,
    refused: Option<Refused>,
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let (service, caller, own) = (service(state), caller(viewer), own_caller(viewer));
    let (key, events, mine, team_disabled) = run(state, viewer, move |conn| {
        let key = service.get(conn, &caller, &client_id, now)?;
        let events = audit::list_events(conn, Some(&client_id), 100, 0)?;
        // On "My keys" (the viewer's or their team's), or only on "All keys".
        let mine = caller == own || service.get(conn, &own, &client_id, now).is_ok();
        // A disabled team's key gets no tokens, whatever its own status.
        let team_disabled = match &key.team {
            Some(team) => crate::teams::find_team(conn, team)?.team.disabled,
            None => false,
        };
        Ok::<_, AppError>((key, events, mine, team_disabled))
    })
    .await?;
    let back = if mine {
        minijinja::context! { href => "/keys", label => "My keys" }
    } else {
        minijinja::context! { href => "/admin/keys", label => "All keys" }
    };
    let choices = grace_choices(&key, now);
    let events: Vec<EventRow> = events.into_iter().map(event_row).collect();
    let name = key.name.clone();
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (envelope, public_key) = match refused {
        Some(Refused::Envelope(envelope)) => (Some(envelope), PublicKeyRefusal::default()),
        Some(Refused::PublicKey(public_key)) => (None, public_key),
        None => (None, PublicKeyRefusal::default()),
    };
    let envelope = envelope.unwrap_or_else(|| EnvelopeRefusal {
        allowed_networks: key.allowed_networks.to_vec().join("\n"),
        max_tokens_per_minute: key
            .max_tokens_per_minute
            .map(|n| n.to_string())
            .unwrap_or_default(),
        errors: FieldErrors::default(),
    });
    Ok(page(
        status,
        "key_detail",
        &viewer.layout(state, &name, "keys"),
        minijinja::context! {
            key => row(state, key, now),
            events,
            back,
            form_id => crate::http::console::forms::new_id(),
            grace_choices => choices,
            team_disabled,
            notice,
            envelope,
            public_key,
        },
    ))
}

/// The public-keys form of a `private_key_jwt` key's page: the keys pasted
/// replace all the key has (list the old and the new during a roll-over).
pub(super) async fn set_public_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let text = posted(&state, &viewer, (&req, &body), |form| {
        Ok(field(form, "public_key")?.trim().to_owned())
    })?;
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let id = client_id.clone();
    let done = match crate::keys::public_keys::parse(&text) {
        Ok(keys) => {
            state
                .db(move |conn| service.set_public_keys(conn, &caller, &id, &keys, now))
                .await
        }
        Err(error) => Err(error.into()),
    }
    .map_err(AppError::from);
    let refused = |errors| {
        Refused::PublicKey(PublicKeyRefusal {
            public_key: if crate::keys::public_keys::holds_private_key(&text) {
                String::new()
            } else {
                text
            },
            errors,
        })
    };
    changed(
        &state,
        &viewer,
        client_id,
        done,
        "public-keys-changed",
        refused,
    )
    .await
}

/// What a change made from the key's page answers: back to the page with
/// `notice`, or the page again with the form `refused` makes of a 422's
/// field errors, or the error page.
async fn changed<T>(
    state: &AppState,
    viewer: &Viewer,
    client_id: String,
    done: Result<T, AppError>,
    notice: &str,
    refused: impl FnOnce(FieldErrors) -> Refused,
) -> Result<HttpResponse, PageError> {
    match done {
        Ok(_) => Ok(see_other(&format!("/keys/{client_id}?notice={notice}"))),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let refused = refused(FieldErrors::from_error(&error));
            render_detail(state, viewer, client_id, None, Some(refused)).await
        }
        Err(error) => Err(viewer.failed(state, error)),
    }
}

/// The usage-limits form of a key's page: allowed networks and the
/// issuance limit, both replaced by what the form holds (empty: none).
pub(super) async fn set_envelope(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let (networks, limit) = posted(&state, &viewer, (&req, &body), |form| {
        let networks = field(form, "allowed_networks")?.trim().to_owned();
        let limit = field(form, "max_tokens_per_minute")?.trim().to_owned();
        Ok((networks, limit))
    })?;
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let id = client_id.clone();
    let done = match envelope_of(&networks, &limit) {
        Ok(envelope) => {
            let change = EnvelopeChange {
                allowed_networks: Some(envelope.allowed_networks),
                max_tokens_per_minute: Some(envelope.max_tokens_per_minute),
            };
            state
                .db(move |conn| service.set_envelope(conn, &caller, &id, &change, now))
                .await
        }
        Err(error) => Err(error),
    }
    .map_err(AppError::from);
    let refused = |errors| {
        Refused::Envelope(EnvelopeRefusal {
            allowed_networks: networks,
            max_tokens_per_minute: limit,
            errors,
        })
    };
    changed(
        &state,
        &viewer,
        client_id,
        done,
        "envelope-changed",
        refused,
    )
    .await
}

pub(super) async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let (form_id, grace) = posted(&state, &viewer, (&req, &body), |form| {
        let form_id = field(form, "form_id")?.to_owned();
        let grace = parse_grace(field(form, "grace")?)?;
        Ok((form_id, grace))
    })?;
    let client_id = path.into_inner().client_id;
    let action = SecretAction::Rotate { client_id, grace };
    match once(&state, &viewer, form_id, action).await? {
        Outcome::Issued(issued) => Ok(secret_page(&state, &viewer, &issued, true)),
        Outcome::Repeated(client_id) => Ok(already_shown(&client_id)),
        Outcome::Refused(error, _) => Err(viewer.failed(&state, error)),
    }
}

pub(super) async fn revoke_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let key = visible_key(&state, &viewer, path.into_inner().client_id).await?;
    Ok(page(
        StatusCode::OK,
        "key_revoke",
        &viewer.layout(&state, "Revoke key", "keys"),
        minijinja::context! { key, reason => "", error => None::<String> },
    ))
}

pub(super) async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let reason = posted(&state, &viewer, (&req, &body), |form| {
        Ok(field(form, "reason")?.to_owned())
    })?;
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let (id, why) = (client_id.clone(), reason.clone());
    let done = state
        .db(move |conn| service.revoke(conn, &caller, &id, Some(&why), now))
        .await
        .map_err(AppError::from);
    match done {
        Ok(_) => Ok(see_other(&format!("/keys/{client_id}?notice=revoked"))),
        Err(error) if error.field == Some("reason") => {
            let key = visible_key(&state, &viewer, client_id).await?;
            Ok(page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "key_revoke",
                &viewer.layout(&state, "Revoke key", "keys"),
                minijinja::context! { key, reason, error => sentence(&error.message) },
            ))
        }
        Err(error) => Err(viewer.failed(&state, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_details_read_as_words() {
        let event = |details: serde_json::Value| AuditEvent {
            id: "1".into(),
            occurred_at: Utc::now().naive_utc(),
            actor: "alice@example.com".into(),
            action: "key.updated".into(),
            target: "kgc_1".into(),
            source_addr: None,
            details: details.to_string(),
        };
        let changed = event_row(event(serde_json::json!({
            "allowed_networks": { "from": [], "to": ["10.0.0.0/8", "192.0.2.0/24"] },
            "max_tokens_per_minute": { "from": null, "to": 100 },
        })));
        assert_eq!(
            changed.summary,
            "allowed_networks: none → 10.0.0.0/8 192.0.2.0/24; max_tokens_per_minute: none → 100"
        );
        let created = event_row(event(serde_json::json!({
            "name": "ci", "allowed_networks": [], "expires_at": null, "scopes": ["read", "write"],
        })));
        assert_eq!(created.summary, "name: ci; scopes: read write");
    }
}
