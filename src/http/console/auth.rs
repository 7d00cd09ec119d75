//! Signing in and out, "forgot password", and setting a password from an
//! invitation or reset link. Before a session exists, forms are protected by
//! the double-submit token of [`super::csrf`].

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{
    Current, Layout, PageError, Viewer, csrf, csrf_refused, field, local_path, notice_for, page,
    parse_form, posted, resource, see_other, with_cookie,
};
use crate::accounts::{
    self, LinkPurpose, MIN_PASSWORD_CHARS, ResetError, SetPasswordError, SignInError, sso,
};
use crate::http::form::Form;
use crate::http::session;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/sign-in")
            .route(web::get().to(sign_in_page))
            .route(web::post().to(sign_in)),
    )
    .service(resource("/sign-out").route(web::post().to(sign_out)))
    .service(
        resource("/forgot-password")
            .route(web::get().to(forgot_page))
            .route(web::post().to(forgot)),
    )
    .service(
        resource("/set-password")
            .route(web::get().to(set_password_page))
            .route(web::post().to(set_password)),
    );
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    notice: Option<String>,
    /// `1`: the page even for a signed-in browser, to sign in again before
    /// a change that asks for a fresh sign-in (`super::security`).
    #[serde(default)]
    again: Option<String>,
}

pub(super) struct SignInForm<'a> {
    pub email: &'a str,
    pub next: &'a str,
    pub error: Option<String>,
    pub notice: Option<&'a str>,
    /// Signing in again: the page says why, and single sign-on asks the
    /// provider to sign the person in afresh.
    pub again: bool,
}

/// The sign-in page: the single sign-on button when a provider is
/// configured, the password form unless `KEYGATE_PASSWORD_SIGN_IN=off`.
pub(super) fn render_sign_in(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    form: SignInForm<'_>,
) -> HttpResponse {
    let (token, cookie) = csrf::pre_session(req, &state.issuer);
    let layout = Layout::public(state, "Sign in", &token);
    let next = local_path(form.next).unwrap_or("");
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !next.is_empty() {
        query.append_pair("next", next);
    }
    if form.again {
        query.append_pair("again", "1");
    }
    let sso_start = match query.finish() {
        query if query.is_empty() => sso::START_PATH.to_owned(),
        query => format!("{}?{query}", sso::START_PATH),
    };
    let response = page(
        status,
        "sign_in",
        &layout,
        minijinja::context! {
            next,
            email => form.email,
            error => form.error,
            notice => notice_for(form.notice),
            sso_name => state.sso.as_ref().map(|sso| sso.name()),
            sso_start,
            password_sign_in => state.accounts.password_sign_in,
            passkeys => state.accounts.passkeys.is_some(),
            again => form.again,
            recent_minutes => accounts::RECENT_SIGN_IN.num_minutes(),
        },
    );
    match cookie {
        Some(cookie) => with_cookie(response, &cookie),
        None => response,
    }
}

async fn sign_in_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<SignInQuery>,
) -> Result<HttpResponse, PageError> {
    let current = current.map_err(|e| PageError::public(&state, e))?;
    let again = query.again.as_deref() == Some("1");
    let email = match (&current.0, again) {
        (Some(session), true) => session.user.email.as_str(),
        (Some(_), false) => return Ok(see_other(local_path(&query.next).unwrap_or("/keys"))),
        (None, _) => "",
    };
    let form = SignInForm {
        email,
        next: &query.next,
        error: None,
        notice: query.notice.as_deref(),
        again,
    };
    Ok(render_sign_in(&req, &state, StatusCode::OK, form))
}

async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = pre_session_form(&req, &state, &body)?;
    let [email, password, next, again] =
        fields(&state, &form, ["email", "password", "next", "again"])?;
    if !state.accounts.password_sign_in {
        return Ok(password_sign_in_off(&req, &state, next));
    }
    let now = state.clock.now();
    let peer = session::client_ip(&state, &req);
    let device = session::device_cookie(&state, &req);
    let device = device.as_ref().map(|cookie| cookie.value());
    let refused = |status, error: String| {
        let form = SignInForm {
            email,
            next,
            error: Some(error),
            notice: None,
            again: again == "1",
        };
        render_sign_in(&req, &state, status, form)
    };
    Ok(
        match accounts::sign_in(&state, email, password, peer, device, now).await {
            Ok(session) => {
                let to = local_path(next).unwrap_or("/keys");
                signed_in((&state, &req), &session, to, now).await
            }
            Err(SignInError::SecondFactorNeeded(pending)) => {
                pending_sign_in(&pending, local_path(next).unwrap_or("/keys"))
            }
            Err(SignInError::Refused) => refused(
                StatusCode::UNAUTHORIZED,
                "Wrong email address or password.".to_owned(),
            ),
            Err(SignInError::Throttled { retry_after }) => {
                let mut response = refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed sign-ins. Try again in {}.",
                        in_words(retry_after)
                    ),
                );
                if let Ok(value) = header::HeaderValue::from_str(&retry_after.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Err(e) => return Err(PageError::public(&state, e)),
        },
    )
}

/// The page of a sign-in's second step (`super::second_factor`).
pub(super) const CODE_PATH: &str = "/sign-in/code";

/// The answer to a right password of someone with a second factor: on to
/// the code page (then `next`), the pending sign-in's cookie set.
pub(super) fn pending_sign_in(pending: &accounts::PendingSignIn, next: &str) -> HttpResponse {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    with_cookie(
        see_other(&format!("{CODE_PATH}?{query}")),
        &session::render(&pending.cookie),
    )
}

/// The answer to any use of a password (sign-in, forgot password, a link)
/// when `KEYGATE_PASSWORD_SIGN_IN=off`: the sign-in page, 403, saying so.
fn password_sign_in_off(req: &HttpRequest, state: &AppState, next: &str) -> HttpResponse {
    let name = state.sso.as_ref().map_or("", |sso| sso.name());
    let form = SignInForm {
        email: "",
        next,
        error: Some(format!(
            "Passwords are not used to sign in here. Sign in with {name}."
        )),
        notice: None,
        again: false,
    };
    render_sign_in(req, state, StatusCode::FORBIDDEN, form)
}

/// The redirect to `to` that a successful sign-in answers, with the
/// session's and the device's cookies; the session the browser held before
/// is ended ([`end_replaced`]).
pub(super) async fn signed_in(
    (state, req): (&AppState, &HttpRequest),
    session: &accounts::NewSession,
    to: &str,
    now: DateTime<Utc>,
) -> HttpResponse {
    end_replaced(state, req).await;
    let cookies = session::signed_in_cookies(state, session, now);
    cookies.iter().fold(see_other(to), with_cookie)
}

/// Ends the live session whose cookie the request still carries, once a
/// sign-in has started another (audited as a sign-out): one browser holds
/// one session, so signing in again (`super::security`) also ends the
/// session a stolen copy of the old cookie would ride. A failure is only
/// logged: the new session stands, and the old one times out.
pub(super) async fn end_replaced(state: &AppState, req: &HttpRequest) {
    let Some(token) = session::session_token(state, req) else {
        return;
    };
    let now = state.clock.now();
    let ended = match accounts::lookup_session(state, &token, now).await {
        Ok(Some(old)) => accounts::sign_out(state, &old, now).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = ended {
        tracing::warn!(error = %e, "the session this sign-in replaced could not be ended");
    }
}

/// A form posted before a session exists: parsed, and its double-submit
/// CSRF token checked.
pub(super) fn pre_session_form(
    req: &HttpRequest,
    state: &AppState,
    body: &[u8],
) -> Result<Form, PageError> {
    let form = parse_form(req, body).map_err(|e| PageError::public(state, e))?;
    let token = field(&form, "csrf_token").unwrap_or("");
    if csrf::pre_session_matches(req, &state.issuer, token) {
        Ok(form)
    } else {
        Err(csrf_refused(state, None).into())
    }
}

/// The values of a form's fields, each empty when absent; a repeated field
/// is refused.
fn fields<'f, const N: usize>(
    state: &AppState,
    form: &'f Form,
    names: [&str; N],
) -> Result<[&'f str; N], PageError> {
    let mut values = [""; N];
    for (value, name) in values.iter_mut().zip(names) {
        *value = field(form, name).map_err(|e| PageError::public(state, e))?;
    }
    Ok(values)
}

/// "3 minutes", "45 seconds".
pub(super) fn in_words(seconds: i64) -> String {
    match seconds {
        s if s >= 120 => format!("{} minutes", (s + 59) / 60),
        s if s >= 60 => "a minute".to_owned(),
        1 => "a second".to_owned(),
        s => format!("{} seconds", s.max(1)),
    }
}

async fn sign_out(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let current = current.map_err(|e| PageError::public(&state, e))?;
    let removal = session::removal_cookie(&state);
    let signed_out = with_cookie(see_other("/sign-in?notice=signed-out"), &removal);
    let Some(session) = current.0 else {
        // Signed out already (expired, or another tab): say so.
        return Ok(signed_out);
    };
    let viewer = Viewer::of(&state, session)
        .await
        .map_err(|e| PageError::public(&state, e))?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    accounts::sign_out(&state, &viewer.session, state.clock.now())
        .await
        .map_err(|e| viewer.failed(&state, e))?;
    Ok(signed_out)
}

fn link_ttl(state: &AppState) -> String {
    state.accounts.invite_ttl.in_words()
}

fn render_forgot(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    email: &str,
    sent: bool,
    error: Option<String>,
) -> HttpResponse {
    let (token, cookie) = csrf::pre_session(req, &state.issuer);
    let layout = Layout::public(state, "Reset your password", &token);
    let response = page(
        status,
        "forgot_password",
        &layout,
        minijinja::context! { email, sent, error, link_ttl => link_ttl(state) },
    );
    match cookie {
        Some(cookie) => with_cookie(response, &cookie),
        None => response,
    }
}

async fn forgot_page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if !state.accounts.password_sign_in {
        return password_sign_in_off(&req, &state, "");
    }
    render_forgot(&req, &state, StatusCode::OK, "", false, None)
}

async fn forgot(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = pre_session_form(&req, &state, &body)?;
    if !state.accounts.password_sign_in {
        return Ok(password_sign_in_off(&req, &state, ""));
    }
    let [email] = fields(&state, &form, ["email"])?;
    let email = email.trim();
    if email.is_empty() {
        let error = Some("Enter your email address.".to_owned());
        return Ok(render_forgot(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            email,
            false,
            error,
        ));
    }
    let peer = session::client_ip(&state, &req);
    Ok(
        match accounts::request_password_reset(&state, email, peer, state.clock.now()).await {
            Ok(()) => render_forgot(&req, &state, StatusCode::OK, email, true, None),
            Err(ResetError::Throttled { retry_after }) => {
                let error = format!("Too many requests. Try again in {}.", in_words(retry_after));
                render_forgot(
                    &req,
                    &state,
                    StatusCode::TOO_MANY_REQUESTS,
                    email,
                    false,
                    Some(error),
                )
            }
            Err(e) => return Err(PageError::public(&state, e)),
        },
    )
}

/// Where a session started by a link with passwords off lands.
const ADD_PASSKEY: &str = "/account/security?notice=add-passkey#passkeys";

#[derive(Debug, Deserialize)]
struct LinkQuery {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Default, serde::Serialize)]
struct PasswordErrors {
    password: Option<String>,
    confirm: Option<String>,
}

fn render_set_password(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    link: Option<(&str, &accounts::LinkInfo)>,
    errors: PasswordErrors,
) -> HttpResponse {
    let (csrf_token, cookie) = csrf::pre_session(req, &state.issuer);
    let title = match link.map(|(_, info)| info.purpose) {
        Some(LinkPurpose::Invite) => "Welcome",
        _ => "Set a new password",
    };
    let layout = Layout::public(state, title, &csrf_token);
    let response = match link {
        Some((token, info)) => page(
            status,
            "set_password",
            &layout,
            minijinja::context! {
                invalid => false,
                token,
                email => &info.email,
                purpose => info.purpose.as_str(),
                passkey_only => !state.accounts.password_sign_in,
                sso_name => state.sso.as_ref().map(|sso| sso.name()),
                sso_start => sso::START_PATH,
                min_length => MIN_PASSWORD_CHARS,
                errors,
                link_ttl => link_ttl(state),
            },
        ),
        None => page(
            StatusCode::NOT_FOUND,
            "set_password",
            &layout,
            minijinja::context! {
                invalid => true,
                link_ttl => link_ttl(state),
                passkey_only => !state.accounts.password_sign_in,
            },
        ),
    };
    match cookie {
        Some(cookie) => with_cookie(response, &cookie),
        None => response,
    }
}

async fn set_password_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, PageError> {
    if !state.accounts.password_sign_in && state.accounts.passkeys.is_none() {
        return Ok(password_sign_in_off(&req, &state, ""));
    }
    let info = accounts::check_link(&state, &query.token, state.clock.now())
        .await
        .map_err(|e| PageError::public(&state, e))?;
    // Without passwords, only an invitation's link leads anywhere (to a
    // passkey); a reset link is refused like a password.
    if !state.accounts.password_sign_in
        && info
            .as_ref()
            .is_some_and(|i| i.purpose != LinkPurpose::Invite)
    {
        return Ok(password_sign_in_off(&req, &state, ""));
    }
    let link = info.as_ref().map(|info| (query.token.as_str(), info));
    let errors = PasswordErrors::default();
    Ok(render_set_password(
        &req,
        &state,
        StatusCode::OK,
        link,
        errors,
    ))
}

async fn set_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let form = pre_session_form(&req, &state, &body)?;
    if !state.accounts.password_sign_in {
        if state.accounts.passkeys.is_none() {
            return Ok(password_sign_in_off(&req, &state, ""));
        }
        let [token] = fields(&state, &form, ["token"])?;
        return passkey_by_link(&req, &state, token).await;
    }
    let [token, password, confirm] = fields(&state, &form, ["token", "password", "confirm"])?;
    let now = state.clock.now();
    let invalid = || {
        let errors = PasswordErrors::default();
        render_set_password(&req, &state, StatusCode::NOT_FOUND, None, errors)
    };
    let info = accounts::check_link(&state, token, now)
        .await
        .map_err(|e| PageError::public(&state, e))?;
    let Some(info) = info else {
        return Ok(invalid());
    };
    let again = |errors| {
        render_set_password(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some((token, &info)),
            errors,
        )
    };
    if password != confirm {
        return Ok(again(PasswordErrors {
            confirm: Some("The two passwords differ.".to_owned()),
            ..PasswordErrors::default()
        }));
    }
    let user = match accounts::set_password_with_link(&state, token, password, now).await {
        Ok(user) => user,
        Err(SetPasswordError::Weak(problem)) => {
            return Ok(again(PasswordErrors {
                password: Some(capitalized(&problem.to_string())),
                ..PasswordErrors::default()
            }));
        }
        Err(SetPasswordError::InvalidLink) => return Ok(invalid()),
        Err(e) => return Err(PageError::public(&state, e)),
    };
    // The person just proved they hold the link and chose the password:
    // sign them in, as every product does after setting a password.
    let peer = session::client_ip(&state, &req);
    let device = session::device_cookie(&state, &req);
    let device = device.as_ref().map(|cookie| cookie.value());
    Ok(
        match accounts::sign_in(&state, &user.email, password, peer, device, now).await {
            Ok(session) => {
                signed_in((&state, &req), &session, "/keys?notice=password-set", now).await
            }
            Err(SignInError::SecondFactorNeeded(pending)) => {
                pending_sign_in(&pending, "/keys?notice=password-set")
            }
            Err(_) => see_other("/sign-in?notice=password-set"),
        },
    )
}

/// With passwords off, the link signs its person in to add a passkey (the
/// Security page, which is all such a session may see until they have one).
async fn passkey_by_link(
    req: &HttpRequest,
    state: &AppState,
    token: &str,
) -> Result<HttpResponse, PageError> {
    let peer = session::client_ip(state, req);
    let now = state.clock.now();
    match accounts::sign_in_with_link(state, token, peer, now).await {
        Ok(session) => Ok(signed_in((state, req), &session, ADD_PASSKEY, now).await),
        Err(SetPasswordError::InvalidLink) => Ok(render_set_password(
            req,
            state,
            StatusCode::NOT_FOUND,
            None,
            PasswordErrors::default(),
        )),
        Err(e) => Err(PageError::public(state, e)),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_as_words() {
        assert_eq!(in_words(1), "a second");
        assert_eq!(in_words(45), "45 seconds");
        assert_eq!(in_words(60), "a minute");
        assert_eq!(in_words(301), "6 minutes");
    }

    #[test]
    fn messages_become_sentences() {
        assert_eq!(
            capitalized("the password is short"),
            "The password is short."
        );
    }
}
