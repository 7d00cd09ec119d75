//! Signing in and out, "forgot password", and setting a password from an
//! invitation or reset link. Before a session exists, forms are protected by
//! the double-submit token of [`super::csrf`].

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{
    Current, Layout, Viewer, csrf, csrf_refused, error_page, field, local_path, notice_for, page,
    parse_form, resource, see_other, with_cookie,
};
use crate::accounts::{
    self, LinkPurpose, MIN_PASSWORD_CHARS, ResetError, SetPasswordError, SignInError,
};
use crate::http::error::AppError;
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
}

struct SignInForm<'a> {
    email: &'a str,
    next: &'a str,
    error: Option<String>,
    notice: Option<&'a str>,
}

fn render_sign_in(
    req: &HttpRequest,
    state: &AppState,
    status: StatusCode,
    form: SignInForm<'_>,
) -> HttpResponse {
    let (token, cookie) = csrf::pre_session(req, &state.issuer);
    let layout = Layout::public(state, "Sign in", &token);
    let response = page(
        status,
        "sign_in",
        &layout,
        minijinja::context! {
            next => local_path(form.next).unwrap_or(""),
            email => form.email,
            error => form.error,
            notice => notice_for(form.notice),
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
) -> HttpResponse {
    let current = or_page!(current.map_err(|e| error_page(&state, None, &e)));
    if current.0.is_some() {
        return see_other(local_path(&query.next).unwrap_or("/keys"));
    }
    let form = SignInForm {
        email: "",
        next: &query.next,
        error: None,
        notice: query.notice.as_deref(),
    };
    render_sign_in(&req, &state, StatusCode::OK, form)
}

async fn sign_in(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form = or_page!(parse_form(&req, &body).map_err(|e| error_page(&state, None, &e)));
    let (email, password, next) = match (
        field(&form, "email"),
        field(&form, "password"),
        field(&form, "next"),
    ) {
        (Ok(e), Ok(p), Ok(n)) => (e, p, n),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&state, None, &e),
    };
    if !csrf::pre_session_matches(
        &req,
        &state.issuer,
        field(&form, "csrf_token").unwrap_or(""),
    ) {
        return csrf_refused(&state, None);
    }
    let now = state.clock.now();
    let peer = session::client_ip(&state, &req);
    let refused = |status, error: String| {
        let form = SignInForm {
            email,
            next,
            error: Some(error),
            notice: None,
        };
        render_sign_in(&req, &state, status, form)
    };
    match accounts::sign_in(&state, email, password, peer, now).await {
        Ok(session) => {
            let cookie = session::session_cookie(&state, &session.token, session.expires_at, now);
            with_cookie(see_other(local_path(next).unwrap_or("/keys")), &cookie)
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
        Err(e) => error_page(&state, None, &AppError::from(e)),
    }
}

/// "3 minutes", "45 seconds".
fn in_words(seconds: i64) -> String {
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
) -> HttpResponse {
    let current = or_page!(current.map_err(|e| error_page(&state, None, &e)));
    let Some(session) = current.0 else {
        // Signed out already (expired, or another tab): say so.
        let removal = session::removal_cookie(&state);
        return with_cookie(see_other("/sign-in?notice=signed-out"), &removal);
    };
    let viewer = match Viewer::of(&state, session).await {
        Ok(v) => v,
        Err(e) => return error_page(&state, None, &e),
    };
    let form = match parse_form(&req, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    if !viewer.csrf_ok(&form) {
        return csrf_refused(&state, Some(&viewer));
    }
    if let Err(e) = accounts::sign_out(&state, &viewer.session, state.clock.now()).await {
        return error_page(&state, Some(&viewer), &e.into());
    }
    let removal = session::removal_cookie(&state);
    with_cookie(see_other("/sign-in?notice=signed-out"), &removal)
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
    render_forgot(&req, &state, StatusCode::OK, "", false, None)
}

async fn forgot(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let form = or_page!(parse_form(&req, &body).map_err(|e| error_page(&state, None, &e)));
    let email = match field(&form, "email") {
        Ok(email) => email.trim(),
        Err(e) => return error_page(&state, None, &e),
    };
    if !csrf::pre_session_matches(
        &req,
        &state.issuer,
        field(&form, "csrf_token").unwrap_or(""),
    ) {
        return csrf_refused(&state, None);
    }
    if email.is_empty() {
        let error = Some("Enter your email address.".to_owned());
        return render_forgot(
            &req,
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            email,
            false,
            error,
        );
    }
    let peer = session::client_ip(&state, &req);
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
        Err(e) => error_page(&state, None, &AppError::from(e)),
    }
}

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
                min_length => MIN_PASSWORD_CHARS,
                errors,
                link_ttl => link_ttl(state),
            },
        ),
        None => page(
            StatusCode::NOT_FOUND,
            "set_password",
            &layout,
            minijinja::context! { invalid => true, link_ttl => link_ttl(state) },
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
) -> HttpResponse {
    match accounts::check_link(&state, &query.token, state.clock.now()).await {
        Ok(info) => {
            let link = info.as_ref().map(|info| (query.token.as_str(), info));
            render_set_password(
                &req,
                &state,
                StatusCode::OK,
                link,
                PasswordErrors::default(),
            )
        }
        Err(e) => error_page(&state, None, &e.into()),
    }
}

async fn set_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> HttpResponse {
    let form = or_page!(parse_form(&req, &body).map_err(|e| error_page(&state, None, &e)));
    let (token, password, confirm) = match (
        field(&form, "token"),
        field(&form, "password"),
        field(&form, "confirm"),
    ) {
        (Ok(t), Ok(p), Ok(c)) => (t, p, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&state, None, &e),
    };
    if !csrf::pre_session_matches(
        &req,
        &state.issuer,
        field(&form, "csrf_token").unwrap_or(""),
    ) {
        return csrf_refused(&state, None);
    }
    let now = state.clock.now();
    let info = match accounts::check_link(&state, token, now).await {
        Ok(info) => info,
        Err(e) => return error_page(&state, None, &e.into()),
    };
    let Some(info) = info else {
        return render_set_password(
            &req,
            &state,
            StatusCode::NOT_FOUND,
            None,
            PasswordErrors::default(),
        );
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
        return again(PasswordErrors {
            confirm: Some("The two passwords differ.".to_owned()),
            ..PasswordErrors::default()
        });
    }
    let user = match accounts::set_password_with_link(&state, token, password, now).await {
        Ok(user) => user,
        Err(SetPasswordError::Weak(problem)) => {
            return again(PasswordErrors {
                password: Some(capitalized(&problem.to_string())),
                ..PasswordErrors::default()
            });
        }
        Err(SetPasswordError::InvalidLink) => {
            return render_set_password(
                &req,
                &state,
                StatusCode::NOT_FOUND,
                None,
                PasswordErrors::default(),
            );
        }
        Err(e) => return error_page(&state, None, &e.into()),
    };
    // The person just proved they hold the link and chose the password:
    // sign them in, as every product does after setting a password.
    let peer = session::client_ip(&state, &req);
    match accounts::sign_in(&state, &user.email, password, peer, now).await {
        Ok(session) => {
            let cookie = session::session_cookie(&state, &session.token, session.expires_at, now);
            with_cookie(see_other("/keys?notice=password-set"), &cookie)
        }
        Err(_) => see_other("/sign-in?notice=password-set"),
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
