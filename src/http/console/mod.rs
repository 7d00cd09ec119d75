//! The web console at `/`: server-rendered pages (templates in
//! `templates/console/`) for people to sign in and manage their keys, and for
//! admins to manage people, APIs, roles, webhooks and read the audit log.
//!
//! Every action is a plain HTML form (no JavaScript needed); a small script
//! file adds copy buttons and confirmations. Every response carries the
//! security headers of [`security_headers`]: a strict CSP without
//! `unsafe-inline`, `frame-ancestors 'none'`, no referrer, no sniffing, and
//! `no-store`, so no page with a person's data (least of all a secret) is
//! kept in a cache or shown again by the back button. Every form carries a
//! CSRF token: the session's, or before signing in the double-submit token
//! of [`csrf`].
//!
//! Handlers stay thin, as the management API's do: they check who asks, call
//! the feature's own functions (`accounts`, `keys`, `users`, ...) and render
//! the outcome, so the console enforces exactly the rules the CLI and the
//! API do.

mod admin;
mod assets;
mod auth;
mod csrf;
mod forms;
mod keys;
mod outcome;
mod passkeys;
mod render;
mod second_factor;
mod security;
mod sso;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::accounts::{CurrentSession, Session};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::state::AppState;

use outcome::{
    PageError, Refused, concluded, concluded_beside, csrf_refused, error_page, posted, run,
};
pub use render::RenderError;

/// The console's Content-Security-Policy: nothing inline, nothing foreign.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The largest form the console accepts.
const MAX_FORM: usize = 64 * 1024;

/// The headers every console response carries, errors included.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::CACHE_CONTROL, "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add((
            "Permissions-Policy",
            "camera=(), microphone=(), geolocation=()",
        ))
}

/// A console route: its handlers answer with the security headers.
fn resource(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .wrap(from_fn(|request, next| {
            crate::http::peer::refuse_unreadable_forwarding(request, next, refused)
        }))
        .wrap(security_headers())
}

/// The page for a request refused before its handler ran: a trusted proxy's
/// `X-Forwarded-For` that names no address.
fn refused(req: &HttpRequest, unreadable: crate::http::peer::UnreadableForwarding) -> HttpResponse {
    refusal_page(req, &AppError::bad_request(unreadable.to_string()))
}

/// A query string a page cannot read (`?page=x`): a 400 page, not actix's
/// plain text.
fn unreadable_query(
    error: actix_web::error::QueryPayloadError,
    req: &HttpRequest,
) -> actix_web::Error {
    let page = refusal_page(req, &AppError::bad_request(format!("{error}")));
    actix_web::error::InternalError::from_response(error, page).into()
}

fn refusal_page(req: &HttpRequest, error: &AppError) -> HttpResponse {
    match req.app_data::<web::Data<AppState>>() {
        Some(state) => error_page(state, None, error),
        None => actix_web::ResponseError::error_response(error),
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(assets::routes);
    cfg.app_data(web::PayloadConfig::new(MAX_FORM));
    cfg.app_data(web::QueryConfig::default().error_handler(unreadable_query));
    cfg.service(resource("/").route(web::get().to(home)));
    auth::routes(cfg);
    sso::routes(cfg);
    second_factor::routes(cfg);
    security::routes(cfg);
    passkeys::routes(cfg);
    keys::routes(cfg);
    admin::routes(cfg);
}

/// The request's session as handlers take it: looking it up may fail (the
/// database is down), and then the page says so in HTML, not the JSON the
/// extractor would answer on its own.
type Current = Result<CurrentSession, AppError>;

/// `/`: the person's keys, or the sign-in page.
async fn home(state: web::Data<AppState>, current: Current) -> Result<HttpResponse, PageError> {
    match current.map_err(|e| PageError::public(&state, e))? {
        CurrentSession(Some(_)) => Ok(see_other("/keys")),
        CurrentSession(None) => Ok(see_other("/sign-in")),
    }
}

/// The signed-in person as pages show them.
#[derive(Debug, Clone, Serialize)]
struct PersonView {
    email: String,
    name: String,
    is_admin: bool,
    /// For an admin: how many keys wait for approval (the menu's badge).
    pending_requests: usize,
}

/// Who is looking at a page, and what the layout needs to show it.
struct Viewer {
    session: Session,
    person: PersonView,
}

impl Viewer {
    /// The signed-in person of the request, with whether their role is
    /// the one that may do everything.
    async fn of(state: &AppState, session: Session) -> Result<Self, AppError> {
        let role = session.user.role.clone();
        let now = state.clock.now();
        let (is_admin, pending_requests) = state
            .db(move |conn| {
                let is_admin = crate::users::find_role(conn, &role)?.grants_all;
                let pending = if is_admin {
                    let filter = crate::keys::KeyFilter {
                        owner: None,
                        status: Some(crate::keys::KeyStatus::Pending),
                    };
                    crate::keys::load_keys(conn, None, &filter, now)?.len()
                } else {
                    0
                };
                Ok::<_, AppError>((is_admin, pending))
            })
            .await?;
        let person = PersonView {
            email: session.user.email.clone(),
            name: session.user.name.clone(),
            is_admin,
            pending_requests,
        };
        Ok(Self { session, person })
    }

    fn email(&self) -> &str {
        &self.session.user.email
    }

    fn is_admin(&self) -> bool {
        self.person.is_admin
    }

    fn layout<'a>(&'a self, state: &'a AppState, title: &'a str, section: &'a str) -> Layout<'a> {
        Layout {
            title,
            section,
            issuer: &state.issuer,
            assets: &assets::URLS,
            narrow: false,
            csrf: self.session.csrf.as_str(),
            person: Some(&self.person),
        }
    }

    /// The error page for `error` in this viewer's layout, as a handler's
    /// `Err`.
    fn failed(&self, state: &AppState, error: impl Into<AppError>) -> PageError {
        error_page(state, Some(self), &error.into()).into()
    }

    /// Whether a form's CSRF token is this session's.
    fn csrf_ok(&self, form: &Form) -> bool {
        form.single("csrf_token")
            .ok()
            .flatten()
            .is_some_and(|t| self.session.csrf_matches(t))
    }
}

/// The signed-in person, or the response that sends the browser to sign in
/// (coming back to this page after).
async fn viewer(
    req: &HttpRequest,
    state: &AppState,
    current: Current,
) -> Result<Viewer, PageError> {
    let current = current.map_err(|e| PageError::public(state, e))?;
    let Some(session) = current.0 else {
        let next = match req.uri().path_and_query() {
            Some(pq) if req.method() == actix_web::http::Method::GET => pq.as_str().to_owned(),
            _ => "/keys".to_owned(),
        };
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", &next)
            .finish();
        return Err(see_other(&format!("/sign-in?{query}")).into());
    };
    // Someone KEYGATE_REQUIRE_MFA covers, signed in with a password alone
    // and without a second factor, may only set one up (or sign out).
    if session.must_enrol && !req.path().starts_with(security::SECURITY_PATH) {
        return Err(see_other(&format!("{}?notice=enrol-first", security::SECURITY_PATH)).into());
    }
    Viewer::of(state, session)
        .await
        .map_err(|e| PageError::public(state, e))
}

/// What every page's layout needs.
#[derive(Debug, Serialize)]
struct Layout<'a> {
    title: &'a str,
    /// The navigation entry to mark as current.
    section: &'a str,
    issuer: &'a str,
    assets: &'static assets::AssetUrls,
    /// Narrow, centred content: the pages before signing in.
    narrow: bool,
    csrf: &'a str,
    person: Option<&'a PersonView>,
}

impl<'a> Layout<'a> {
    /// A page for someone not signed in.
    fn public(state: &'a AppState, title: &'a str, csrf: &'a str) -> Self {
        Self {
            title,
            section: "",
            issuer: &state.issuer,
            assets: &assets::URLS,
            narrow: true,
            csrf,
            person: None,
        }
    }
}

/// A rendered page, or a plain error when rendering fails (a bug: logged).
fn page(
    status: StatusCode,
    name: &str,
    layout: &Layout<'_>,
    context: impl Serialize,
) -> HttpResponse {
    let context = minijinja::context! {
        ..minijinja::Value::from_serialize(context),
        ..minijinja::Value::from_serialize(layout)
    };
    match render::render(name, context) {
        Ok(html) => HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(error) => {
            tracing::error!(%error, "console page failed to render");
            HttpResponse::InternalServerError()
                .content_type("text/plain; charset=utf-8")
                .body("The page failed to render; the server's log says why.\n")
        }
    }
}

/// A message as a sentence: capital first, full stop last.
fn sentence(text: &str) -> String {
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

/// The body of a console form. Anything but a form is refused.
fn parse_form(req: &HttpRequest, body: &[u8]) -> Result<Form, AppError> {
    Form::from_request(req, body).map_err(|e| AppError::bad_request(e.to_string()))
}

/// A form field's one value, empty when absent; a repeated field is refused.
fn field<'f>(form: &'f Form, name: &str) -> Result<&'f str, AppError> {
    form.single(name)
        .map(Option::unwrap_or_default)
        .map_err(|e| AppError::bad_request(e.to_string()))
}

/// 303 See Other: after a form, the browser GETs the next page, so a reload
/// does not post the form again.
fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

fn with_cookie(mut response: HttpResponse, cookie: &actix_web::cookie::Cookie<'_>) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `next` when it is a path on this site (`/keys`), never another origin
/// (`//evil.example`, `https://...`): no open redirect.
fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    ok.then_some(next)
}

/// The query of a page a form redirected to: `?notice=saved`.
#[derive(Debug, serde::Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

/// A short notice shown at the top of the page a form redirected to.
#[derive(Debug, Serialize)]
struct Notice {
    kind: &'static str,
    text: &'static str,
}

fn notice_for(code: Option<&str>) -> Option<Notice> {
    let (kind, text) = match code? {
        "signed-out" => ("ok", "You are signed out."),
        "password-set" => ("ok", "Your password is set. Welcome!"),
        "totp-on" => (
            "ok",
            "The authenticator app is on: signing in now also asks for its code.",
        ),
        "totp-off" => (
            "ok",
            "The authenticator app is removed, with your recovery codes.",
        ),
        "passkey-added" => ("ok", "The passkey is added."),
        "passkey-removed" => ("ok", "The passkey is removed."),
        "passkey-renamed" => ("ok", "The passkey is renamed."),
        "add-passkey" => (
            "ok",
            "Welcome! Add a passkey to finish: from now on it signs you in.",
        ),
        "enrol-first" => (
            "warn",
            "A second factor is required of you here: set one up to continue.",
        ),
        "sign-in-expired" => (
            "warn",
            "That sign-in took too long. Enter your password again.",
        ),
        "revoked" => ("ok", "The key is revoked. Its owner has been emailed."),
        "transferred" => (
            "ok",
            "The key is transferred; its client ID and secret are unchanged. \
             The previous and the new owner have been emailed.",
        ),
        "transferred-away" => (
            "ok",
            "The key is transferred and no longer on your list; its client ID and secret \
             are unchanged. The previous and the new owner have been emailed.",
        ),
        "already-shown" => (
            "warn",
            "That form was already sent. A key's secret is shown once and not again: \
             rotate the key if you did not save it (a key with a public key has none).",
        ),
        "invited" => ("ok", "The invitation is on its way."),
        "disabled" => (
            "ok",
            "The person is disabled: signed out everywhere, and their keys stopped.",
        ),
        "disabled-transferred" => (
            "ok",
            "The person is disabled, and their live keys now belong to the new owner, \
             who has been emailed.",
        ),
        "team-created" => ("ok", "The team is created. Add its members below."),
        "team-disabled" => (
            "ok",
            "The team is disabled: its keys get no tokens until it is enabled again.",
        ),
        "team-enabled" => ("ok", "The team is enabled: its keys work again."),
        "member-added" => ("ok", "The member is added."),
        "member-removed" => ("ok", "The member is removed. The team's keys keep working."),
        "approved" => (
            "ok",
            "The key is approved: it gets tokens from now on. Whoever asked has been emailed.",
        ),
        "denied" => (
            "ok",
            "The request is denied and the key revoked. Whoever asked has been emailed.",
        ),
        "saved" => ("ok", "Saved."),
        "created-public-key" => (
            "ok",
            "The key is created. It has no secret: its client signs client assertions \
             (private_key_jwt) with the private key that matches the public key below.",
        ),
        "public-keys-changed" => (
            "ok",
            "The public keys are replaced: from the next request, only assertions signed by \
             one of them are accepted.",
        ),
        "webhook-secret-already-shown" => (
            "warn",
            "That form was already sent. The signing secret was shown once and is not shown \
             again; remove the endpoint and add it again if you did not save it.",
        ),
        "webhook-test-queued" => (
            "ok",
            "A webhook.test event is queued for this endpoint; it is listed below.",
        ),
        "webhook-resent" => (
            "ok",
            "The delivery is queued again, with the same webhook-id.",
        ),
        "webhook-off" => (
            "ok",
            "The endpoint is switched off: it receives nothing until it is switched on.",
        ),
        "webhook-on" => (
            "ok",
            "The endpoint is switched on; its past failures are forgotten.",
        ),
        "webhook-removed" => ("ok", "The endpoint is removed, with its deliveries."),
        "federation-added" => (
            "ok",
            "The trusted workload is added: its workloads may exchange their tokens now.",
        ),
        "federation-removed" => ("ok", "The trusted workload is removed and its key revoked."),
        "envelope-changed" => (
            "ok",
            "The usage limits are changed; the next token request obeys them.",
        ),
        _ => return None,
    };
    Some(Notice { kind, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(local_path("/keys/kg_1"), Some("/keys/kg_1"));
        assert_eq!(local_path("//evil.example/"), None);
        assert_eq!(local_path("/\\evil.example/"), None);
        assert_eq!(local_path("https://evil.example/"), None);
        assert_eq!(local_path("/keys\r\nSet-Cookie: x"), None);
        assert_eq!(local_path(""), None);
    }

    #[test]
    fn unknown_notices_show_nothing() {
        assert!(notice_for(Some("<script>")).is_none());
        assert!(notice_for(None).is_none());
        assert_eq!(notice_for(Some("revoked")).unwrap().kind, "ok");
    }
}
