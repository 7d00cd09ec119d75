//! A person's keys: the list, creating one (the secret shown once, with a
//! CSV download), a key's detail and activity, rotating and revoking it.
//! Admins reach every key; everyone else only their own (another's key is
//! "not found", as in the management API).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::forms::{self, Claim};
use super::{
    Current, Viewer, csrf_refused, error_page, field, notice_for, page, parse_form, resource,
    see_other, viewer,
};
use crate::audit::{self, AuditEvent};
use crate::duration::HumanDuration;
use crate::error::AppError;
use crate::keys::envelope;
use crate::keys::{
    self, AllowedNetworks, Envelope, EnvelopeChange, IssuedKey, KeyStatus, KeyView, NewKeyRequest,
};
use crate::oauth_form::Form;
use crate::scope::{self, Audience, ScopeSet};
use crate::state::AppState;
use crate::time::parse_rfc3339;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/keys")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(resource("/keys/new").route(web::get().to(new_form)))
    .service(resource("/keys/{client_id}").route(web::get().to(detail)))
    .service(resource("/keys/{client_id}/rotate").route(web::post().to(rotate)))
    .service(resource("/keys/{client_id}/envelope").route(web::post().to(set_envelope)))
    .service(
        resource("/keys/{client_id}/revoke")
            .route(web::get().to(revoke_page))
            .route(web::post().to(revoke)),
    );
}

/// A key as the list and detail pages show it.
#[derive(Debug, Serialize)]
pub(super) struct KeyRow {
    #[serde(flatten)]
    key: KeyView,
    /// Active and inside the expiry warning window.
    pub(super) expiring: bool,
}

impl KeyRow {
    pub(super) fn status(&self) -> KeyStatus {
        self.key.status
    }
}

pub(super) fn row(state: &AppState, key: KeyView, now: DateTime<Utc>) -> KeyRow {
    let expiring = key.status == KeyStatus::Active
        && key
            .expires_at
            .as_deref()
            .and_then(parse_rfc3339)
            .is_some_and(|at| at - now <= state.expiry_warning.as_chrono());
    KeyRow { key, expiring }
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let now = state.clock.now();
    let owner = viewer.email().to_owned();
    let found = state
        .db(move |conn| keys::list_api_keys(conn, Some(&owner), now))
        .await;
    let keys = match found {
        Ok(keys) => keys,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    let rows: Vec<KeyRow> = keys.into_iter().map(|k| row(&state, k, now)).collect();
    let user = &viewer.session.user;
    page(
        StatusCode::OK,
        "keys",
        &viewer.layout(&state, "My keys", "keys"),
        minijinja::context! {
            keys => rows,
            all_keys => false,
            may_create => user.can_create_keys,
            cannot_create => " An administrator has switched off key creation for your account; your existing keys keep working.",
            notice => notice_for(query.notice.as_deref()),
        },
    )
}

/// The scopes a person may tick, grouped by the API that defines them.
#[derive(Debug, Serialize)]
struct ScopeGroup {
    name: String,
    /// The API's audience; empty for keygate's own scopes.
    identifier: String,
    scopes: Vec<String>,
}

async fn scope_groups(state: &AppState, viewer: &Viewer) -> Result<Vec<ScopeGroup>, AppError> {
    let role = viewer.session.user.role.clone();
    state
        .db(move |conn| {
            let role = crate::users::find_role(conn, &role)?;
            let apis = crate::resource_servers::list_apis(conn)?;
            // Every API scope, from the rows just read rather than a second query.
            let all: ScopeSet = apis
                .iter()
                .flat_map(|api| ScopeSet::from_stored(&api.scopes).to_vec())
                .collect();
            let grantable = role.grantable(|| Ok(all))?;
            let mut groups: Vec<ScopeGroup> = apis
                .into_iter()
                .map(|api| ScopeGroup {
                    scopes: ScopeSet::from_stored(&api.scopes)
                        .iter()
                        .filter(|s| grantable.allows(s))
                        .map(str::to_owned)
                        .collect(),
                    name: api.name,
                    identifier: api.identifier,
                })
                .filter(|g| !g.scopes.is_empty())
                .collect();
            let own: Vec<String> = scope::BUILTIN_SCOPES
                .iter()
                .filter(|s| grantable.allows(s))
                .map(|s| (*s).to_owned())
                .collect();
            if !own.is_empty() {
                groups.push(ScopeGroup {
                    name: "keygate itself".to_owned(),
                    identifier: String::new(),
                    scopes: own,
                });
            }
            Ok::<_, AppError>(groups)
        })
        .await
}

/// The expiry choices under the configured maximum, the longest first.
fn expiry_choices(max: Option<HumanDuration>) -> Vec<(String, String)> {
    let mut choices: Vec<(String, String)> = [
        ("7d", "7 days"),
        ("30d", "30 days"),
        ("90d", "90 days"),
        ("180d", "180 days"),
        ("365d", "1 year"),
    ]
    .into_iter()
    .filter(|(value, _)| {
        let asked: Option<HumanDuration> = value.parse().ok();
        match (asked, max) {
            (Some(asked), Some(max)) => asked <= max,
            (Some(_), None) => true,
            (None, _) => false,
        }
    })
    .map(|(v, l)| (v.to_owned(), l.to_owned()))
    .collect();
    if let Some(max) = max
        && !choices
            .iter()
            .any(|(v, _)| v.parse::<HumanDuration>().ok() == Some(max))
    {
        choices.push((max.to_string(), format!("{} (the maximum)", max.in_words())));
    }
    if max.is_none() {
        choices.push(("never".to_owned(), "Never".to_owned()));
    }
    choices
}

/// What the person typed, kept when the form comes back with errors.
#[derive(Debug, Default, Serialize)]
struct KeyForm {
    name: String,
    description: String,
    scopes: Vec<String>,
    audience: String,
    expires_in: String,
    /// Allowed networks as typed (commas, spaces or lines between them).
    allowed_networks: String,
    max_tokens_per_minute: String,
}

/// Errors by field; `form` for the rest.
#[derive(Debug, Default, Serialize)]
struct FieldErrors {
    name: Option<String>,
    description: Option<String>,
    scopes: Option<String>,
    audience: Option<String>,
    expires_in: Option<String>,
    allowed_networks: Option<String>,
    max_tokens_per_minute: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    /// Puts a refusal next to the field it is about.
    fn from_error(error: &AppError) -> Self {
        let message = Some(sentence(&error.message));
        match error.code {
            "invalid_name" => Self {
                name: message,
                ..Self::default()
            },
            "invalid_description" => Self {
                description: message,
                ..Self::default()
            },
            "unknown_scope" | "scope_not_grantable" | "invalid_scope" | "no_scopes" => Self {
                scopes: message,
                ..Self::default()
            },
            "unknown_audience" | "invalid_audience" | "scope_outside_audience" => Self {
                audience: message,
                ..Self::default()
            },
            "expiry_too_long" | "invalid_duration" => Self {
                expires_in: message,
                ..Self::default()
            },
            "invalid_network" => Self {
                allowed_networks: message,
                ..Self::default()
            },
            "invalid_token_limit" => Self {
                max_tokens_per_minute: message,
                ..Self::default()
            },
            _ => Self {
                form: message,
                ..Self::default()
            },
        }
    }
}

/// A message as a sentence: capital first, full stop last.
pub(super) fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

async fn render_new(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: KeyForm,
    errors: FieldErrors,
) -> HttpResponse {
    let groups = match scope_groups(state, viewer).await {
        Ok(groups) => groups,
        Err(e) => return error_page(state, Some(viewer), &e),
    };
    let max = state.key_max_lifetime;
    let form = KeyForm {
        expires_in: if form.expires_in.is_empty() {
            max.map_or("90d".to_owned(), |m| {
                m.min("90d".parse().unwrap_or(m)).to_string()
            })
        } else {
            form.expires_in
        },
        ..form
    };
    page(
        status,
        "key_new",
        &viewer.layout(state, "Create key", "keys"),
        minijinja::context! {
            form,
            errors,
            form_id => forms::new_id(),
            scope_groups => groups,
            expiry_choices => expiry_choices(max),
            max_lifetime => max.map(HumanDuration::in_words),
        },
    )
}

async fn new_form(req: HttpRequest, state: web::Data<AppState>, current: Current) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    render_new(
        &state,
        &viewer,
        StatusCode::OK,
        KeyForm::default(),
        FieldErrors::default(),
    )
    .await
}

fn parse_key_form(form: &Form) -> Result<KeyForm, AppError> {
    Ok(KeyForm {
        name: field(form, "name")?.to_owned(),
        description: field(form, "description")?.to_owned(),
        scopes: form.all("scope").to_vec(),
        audience: field(form, "audience")?.trim().to_owned(),
        expires_in: field(form, "expires_in")?.trim().to_owned(),
        allowed_networks: optional_field(form, "allowed_networks")?.trim().to_owned(),
        max_tokens_per_minute: optional_field(form, "max_tokens_per_minute")?
            .trim()
            .to_owned(),
    })
}

/// A field a form may leave out: empty when it does.
fn optional_field<'f>(form: &'f Form, name: &str) -> Result<&'f str, AppError> {
    match form.all(name) {
        [] => Ok(""),
        _ => field(form, name),
    }
}

/// The envelope typed into a form.
fn envelope_of(networks: &str, limit: &str) -> Result<Envelope, AppError> {
    Ok(Envelope {
        allowed_networks: AllowedNetworks::parse(networks)?,
        max_tokens_per_minute: envelope::parse_tokens_per_minute(limit)?,
    })
}

/// The request the keys module checks, from the form.
fn key_request<'f>(owner: &'f str, form: &'f KeyForm) -> Result<NewKeyRequest<'f>, AppError> {
    let mut scopes = Vec::with_capacity(form.scopes.len());
    for scope in &form.scopes {
        let one = ScopeSet::parse(scope)
            .map_err(|e| AppError::invalid("invalid_scope", e.to_string()))?;
        scopes.extend(one.to_vec());
    }
    if scopes.is_empty() {
        return Err(AppError::invalid("no_scopes", "tick at least one scope"));
    }
    let audiences = match form.audience.as_str() {
        "" => Vec::new(),
        a => vec![Audience::parse(a).map_err(|m| AppError::invalid("invalid_audience", m))?],
    };
    let expires_in = match form.expires_in.as_str() {
        "" | "never" => None,
        d => Some(
            d.parse::<HumanDuration>()
                .map_err(|e| AppError::invalid("invalid_duration", format!("expiry {d:?}: {e}")))?,
        ),
    };
    Ok(NewKeyRequest {
        owner_email: owner,
        name: &form.name,
        description: &form.description,
        scopes: scopes.into_iter().collect(),
        audiences,
        expires_in,
        envelope: envelope_of(&form.allowed_networks, &form.max_tokens_per_minute)?,
    })
}

/// What a form that hands out a secret does, under its one-time form ID.
enum SecretAction {
    Create(KeyForm),
    Rotate {
        client_id: String,
        grace: Option<HumanDuration>,
    },
}

/// How a form that hands out a secret ended.
enum Outcome {
    Issued(Box<IssuedKey>),
    /// Sent before: the key it acted on (empty while unknown).
    Repeated(String),
    /// Refused by the keys module: nothing was done. The key form comes
    /// back so the person can correct it.
    Refused(AppError, Option<Box<KeyForm>>),
}

/// Runs `action` once per form ID: a repeat goes to the key instead.
async fn once(
    state: &AppState,
    viewer: &Viewer,
    form_id: String,
    action: SecretAction,
) -> Result<Outcome, AppError> {
    let now = state.clock.now();
    let actor = viewer.email().to_owned();
    let is_admin = viewer.is_admin();
    let issuer = state.issuer.clone();
    let limits = state.key_limits();
    let tagger = state.accounts.token_hasher.clone();
    state
        .db(move |conn| {
            if let Claim::Seen(client_id) = forms::claim(conn, &form_id, now)? {
                return Ok(Outcome::Repeated(client_id.unwrap_or_default()));
            }
            let outcome = match &action {
                SecretAction::Create(form) => key_request(&actor, form).and_then(|request| {
                    keys::create_api_key(conn, request, limits, &tagger, (&issuer, &actor), now)
                }),
                SecretAction::Rotate { client_id, grace } => {
                    visible_key(conn, client_id, &actor, is_admin, now).and_then(|_| {
                        keys::rotate_api_key(
                            conn,
                            client_id,
                            *grace,
                            &tagger,
                            (&issuer, &actor),
                            now,
                        )
                    })
                }
            };
            match outcome {
                Ok(issued) => {
                    forms::record(conn, &form_id, &issued.key.client_id)?;
                    Ok(Outcome::Issued(Box::new(issued)))
                }
                Err(error) if error.is_internal() => Err(error),
                Err(error) => {
                    // Nothing was done: the corrected form may be sent again.
                    forms::release(conn, &form_id)?;
                    let form = match action {
                        SecretAction::Create(form) => Some(Box::new(form)),
                        SecretAction::Rotate { .. } => None,
                    };
                    Ok(Outcome::Refused(error, form))
                }
            }
        })
        .await
}

async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let parsed = parse_form(&req, &body).and_then(|form| {
        let key_form = parse_key_form(&form)?;
        let form_id = field(&form, "form_id")?.to_owned();
        Ok((form, key_form, form_id))
    });
    let (form, key_form, form_id) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    if !viewer.csrf_ok(&form) {
        return csrf_refused(&state, Some(&viewer));
    }
    match once(&state, &viewer, form_id, SecretAction::Create(key_form)).await {
        Ok(Outcome::Issued(issued)) => secret_page(&state, &viewer, &issued, false),
        Ok(Outcome::Repeated(client_id)) => already_shown(&client_id),
        Ok(Outcome::Refused(error, Some(key_form))) => {
            let errors = FieldErrors::from_error(&error);
            render_new(&state, &viewer, error.status, *key_form, errors).await
        }
        Ok(Outcome::Refused(error, None)) | Err(error) => error_page(&state, Some(&viewer), &error),
    }
}

/// A form sent again: to the key, without its secret.
fn already_shown(client_id: &str) -> HttpResponse {
    if client_id.is_empty() {
        see_other("/keys?notice=already-shown")
    } else {
        see_other(&format!("/keys/{client_id}?notice=already-shown"))
    }
}

/// The one page that shows a secret. `no-store` (from the security headers)
/// keeps it out of every cache, so the back button cannot bring it back,
/// and the secret is nowhere else to be had.
fn secret_page(
    state: &AppState,
    viewer: &Viewer,
    issued: &IssuedKey,
    rotated: bool,
) -> HttpResponse {
    let csv = csv_of(issued);
    let csv_href = format!(
        "data:text/csv;charset=utf-8,{}",
        percent_encoding::utf8_percent_encode(&csv, percent_encoding::NON_ALPHANUMERIC)
    );
    page(
        StatusCode::OK,
        "key_secret",
        &viewer.layout(state, "Your new secret", "keys"),
        minijinja::context! {
            key => &issued.key,
            secret => issued.secret.expose(),
            rotated,
            csv_href,
            csv_name => format!("{}.csv", issued.key.client_id),
        },
    )
}

/// `client_id,client_secret,name,scopes,audiences,expires_at` with a header
/// row (RFC 4180 quoting). A name a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) is prefixed with `'`.
fn csv_of(issued: &IssuedKey) -> String {
    let key = &issued.key;
    let fields = [
        key.client_id.clone(),
        issued.secret.expose().to_owned(),
        defuse_formula(&key.name),
        key.scopes.join(" "),
        key.audiences.join(" "),
        key.expires_at.clone().unwrap_or_default(),
    ];
    let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    format!(
        "client_id,client_secret,name,scopes,audiences,expires_at\r\n{}\r\n",
        row.join(",")
    )
}

fn defuse_formula(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The key, if the viewer may see it: another's key is "not found".
fn visible_key(
    conn: &mut crate::db::DbConnection,
    client_id: &str,
    viewer_email: &str,
    is_admin: bool,
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    let (_, view) = keys::find_key_view(conn, client_id, now)?;
    if is_admin || view.owner.eq_ignore_ascii_case(viewer_email) {
        Ok(view)
    } else {
        Err(AppError::not_found(
            "key_not_found",
            format!("no key with client ID {client_id}"),
        ))
    }
}

/// An audit event as the key's activity shows it.
#[derive(Debug, Serialize)]
pub(super) struct EventRow {
    occurred_at: String,
    action: String,
    actor: String,
    target: String,
    source_addr: Option<String>,
    summary: String,
}

pub(super) fn event_row(event: AuditEvent) -> EventRow {
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

#[derive(Debug, Deserialize)]
struct KeyPath {
    client_id: String,
}

fn grace_choices(key: &KeyView, now: DateTime<Utc>) -> Vec<(&'static str, &'static str)> {
    let left = key
        .expires_at
        .as_deref()
        .and_then(parse_rfc3339)
        .map(|at| at - now);
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

async fn detail(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
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

async fn render_detail(
    state: &AppState,
    viewer: &Viewer,
    client_id: String,
    notice: impl Serialize,
    refused: Option<EnvelopeRefusal>,
) -> HttpResponse {
    let now = state.clock.now();
    let (email, is_admin) = (viewer.email().to_owned(), viewer.is_admin());
    let found = state
        .db(move |conn| {
            let view = visible_key(conn, &client_id, &email, is_admin, now)?;
            let events = audit::list_events(conn, Some(&client_id), 100, 0)?;
            Ok::<_, AppError>((view, events))
        })
        .await;
    let (view, events) = match found {
        Ok(found) => found,
        Err(e) => return error_page(state, Some(viewer), &e),
    };
    let back = if is_admin && !view.owner.eq_ignore_ascii_case(viewer.email()) {
        minijinja::context! { href => "/admin/keys", label => "All keys" }
    } else {
        minijinja::context! { href => "/keys", label => "My keys" }
    };
    let choices = grace_choices(&view, now);
    let events: Vec<EventRow> = events.into_iter().map(event_row).collect();
    let name = view.name.clone();
    let status = if refused.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let envelope = refused.unwrap_or_else(|| EnvelopeRefusal {
        allowed_networks: view.allowed_networks.join("\n"),
        max_tokens_per_minute: view
            .max_tokens_per_minute
            .map(|n| n.to_string())
            .unwrap_or_default(),
        errors: FieldErrors::default(),
    });
    page(
        status,
        "key_detail",
        &viewer.layout(state, &name, "keys"),
        minijinja::context! {
            key => row(state, view, now),
            events,
            back,
            form_id => forms::new_id(),
            grace_choices => choices,
            notice,
            envelope,
        },
    )
}

/// The usage-limits form of a key's page: allowed networks and the
/// issuance limit, both replaced by what the form holds (empty: none).
async fn set_envelope(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let parsed = parse_form(&req, &body).and_then(|form| {
        let networks = field(&form, "allowed_networks")?.trim().to_owned();
        let limit = field(&form, "max_tokens_per_minute")?.trim().to_owned();
        Ok((form, networks, limit))
    });
    let (form, networks, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    if !viewer.csrf_ok(&form) {
        return csrf_refused(&state, Some(&viewer));
    }
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (email, is_admin) = (viewer.email().to_owned(), viewer.is_admin());
    let id = client_id.clone();
    let typed = (networks.clone(), limit.clone());
    let done = match envelope_of(&networks, &limit) {
        Ok(envelope) => {
            let change = EnvelopeChange {
                allowed_networks: Some(envelope.allowed_networks),
                max_tokens_per_minute: Some(envelope.max_tokens_per_minute),
            };
            state
                .db(move |conn| {
                    visible_key(conn, &id, &email, is_admin, now)?;
                    keys::set_envelope(conn, &id, &change, &email, now)
                })
                .await
        }
        Err(error) => Err(error),
    };
    match done {
        Ok(_) => see_other(&format!("/keys/{client_id}?notice=envelope-changed")),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let refused = EnvelopeRefusal {
                allowed_networks: typed.0,
                max_tokens_per_minute: typed.1,
                errors: FieldErrors::from_error(&error),
            };
            render_detail(
                &state,
                &viewer,
                client_id,
                None::<super::Notice>,
                Some(refused),
            )
            .await
        }
        Err(error) => error_page(&state, Some(&viewer), &error),
    }
}

async fn rotate(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let parsed = parse_form(&req, &body).and_then(|form| {
        let form_id = field(&form, "form_id")?.to_owned();
        let grace = field(&form, "grace")?;
        let grace = HumanDuration::parse_or_zero(grace)
            .map_err(|e| AppError::invalid("invalid_duration", format!("grace {grace:?}: {e}")))?;
        Ok((form, form_id, grace))
    });
    let (form, form_id, grace) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    if !viewer.csrf_ok(&form) {
        return csrf_refused(&state, Some(&viewer));
    }
    let client_id = path.into_inner().client_id;
    let action = SecretAction::Rotate { client_id, grace };
    match once(&state, &viewer, form_id, action).await {
        Ok(Outcome::Issued(issued)) => secret_page(&state, &viewer, &issued, true),
        Ok(Outcome::Repeated(client_id)) => already_shown(&client_id),
        Ok(Outcome::Refused(error, _)) | Err(error) => error_page(&state, Some(&viewer), &error),
    }
}

async fn revoke_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (email, is_admin) = (viewer.email().to_owned(), viewer.is_admin());
    let found = state
        .db(move |conn| visible_key(conn, &client_id, &email, is_admin, now))
        .await;
    match found {
        Ok(key) => page(
            StatusCode::OK,
            "key_revoke",
            &viewer.layout(&state, "Revoke key", "keys"),
            minijinja::context! { key, reason => "", error => None::<String> },
        ),
        Err(e) => error_page(&state, Some(&viewer), &e),
    }
}

async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(viewer(&req, &state, current).await);
    let parsed =
        parse_form(&req, &body).and_then(|form| Ok((field(&form, "reason")?.to_owned(), form)));
    let (reason, form) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    if !viewer.csrf_ok(&form) {
        return csrf_refused(&state, Some(&viewer));
    }
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let (email, is_admin) = (viewer.email().to_owned(), viewer.is_admin());
    let issuer = state.issuer.clone();
    let (id, why) = (client_id.clone(), reason.clone());
    let done = state
        .db(move |conn| {
            visible_key(conn, &id, &email, is_admin, now)?;
            keys::revoke_api_key(conn, &id, Some(&why), (&issuer, &email), now)
        })
        .await;
    match done {
        Ok(_) => see_other(&format!("/keys/{client_id}?notice=revoked")),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let key = state
                .db({
                    let (id, email) = (client_id.clone(), viewer.email().to_owned());
                    move |conn| visible_key(conn, &id, &email, is_admin, now)
                })
                .await;
            match key {
                Ok(key) => page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "key_revoke",
                    &viewer.layout(&state, "Revoke key", "keys"),
                    minijinja::context! { key, reason, error => sentence(&error.message) },
                ),
                Err(e) => error_page(&state, Some(&viewer), &e),
            }
        }
        Err(error) => error_page(&state, Some(&viewer), &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(defuse_formula("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse_formula("billing"), "billing");
    }

    #[test]
    fn expiry_choices_respect_the_maximum() {
        let max: HumanDuration = "30d".parse().unwrap();
        let values: Vec<String> = expiry_choices(Some(max))
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(values, ["7d", "30d"]);
        let odd: HumanDuration = "45d".parse().unwrap();
        let values: Vec<String> = expiry_choices(Some(odd))
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(values, ["7d", "30d", "45d"]);
        let values: Vec<String> = expiry_choices(None).into_iter().map(|(v, _)| v).collect();
        assert!(values.contains(&"never".to_owned()));
    }

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

    #[test]
    fn refusals_land_next_to_their_field() {
        let e = AppError::invalid("expiry_too_long", "expiry 1y is past the maximum");
        let errors = FieldErrors::from_error(&e);
        assert_eq!(
            errors.expires_in.as_deref(),
            Some("Expiry 1y is past the maximum.")
        );
        assert!(errors.form.is_none());
    }
}
