//! `/account/security`: the signed-in person's second factors. Setting up
//! an authenticator app (its QR code and setup key, confirmed with one
//! code), removing it, and making new recovery codes; the codes are shown
//! once, in the answer to the form that made them. The rules are
//! `crate::accounts::factors`'.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{
    Current, NoticeQuery, PageError, Refused, Viewer, concluded_beside, field, notice_for, page,
    posted, viewer,
};
use crate::accounts::factors::{self, FactorError, RECOVERY_CODE_COUNT, RecoveryCodes};
use crate::http::error::AppError;
use crate::state::AppState;

/// The page's path; a session that must enrol is sent here.
pub const SECURITY_PATH: &str = "/account/security";

/// The sign-in page asking the person to sign in again, then back here:
/// where a change is sent when its session signed in too long ago
/// ([`FactorError::SignInAgain`]).
pub const SIGN_IN_AGAIN: &str = "/sign-in?again=1&next=/account/security";

pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource(SECURITY_PATH).route(web::get().to(security_page)))
        .service(resource("/account/security/totp").route(web::post().to(begin_totp)))
        .service(resource("/account/security/totp/confirm").route(web::post().to(confirm_totp)))
        .service(resource("/account/security/totp/remove").route(web::post().to(remove_totp)))
        .service(
            resource("/account/security/recovery-codes").route(web::post().to(new_recovery_codes)),
        );
}

async fn render(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    code_error: Option<String>,
    notice: Option<&str>,
    refusal: Option<String>,
) -> Result<HttpResponse, PageError> {
    let user = &viewer.session.user;
    let now = state.clock.now();
    let overview = factors::security_overview(state, user)
        .await
        .map_err(|e| viewer.failed(state, e))?;
    let enrolment = if overview.totp_since.is_none() {
        factors::waiting_totp(state, user)
            .await
            .map_err(|e| viewer.failed(state, e))?
    } else {
        None
    };
    let enrolment = enrolment.as_ref().map(|e| {
        minijinja::context! {
            qr_svg => e.qr_svg.as_str(),
            secret => e.secret.as_str(),
        }
    });
    Ok(page(
        status,
        "security",
        &viewer.layout(state, "Security", "security"),
        minijinja::context! {
            email => &user.email,
            overview,
            enrolment,
            code_error,
            refusal,
            code_count => RECOVERY_CODE_COUNT,
            must_enrol => viewer.session.must_enrol,
            passwords_off => !state.accounts.password_sign_in,
            // Changes ask for a fresh sign-in: say so before one is tried.
            recent => viewer.session.signed_in_recently(now),
            signed_in_at => viewer.session.created_at.to_rfc3339(),
            sign_in_again => SIGN_IN_AGAIN,
            // The page says why it is the only one, once.
            notice => notice_for(notice.filter(|n| !(viewer.session.must_enrol && *n == "enrol-first"))),
        },
    ))
}

/// The page again, its status the refusal's and the refusal said at its top.
async fn said_no(
    state: &AppState,
    viewer: &Viewer,
    refused: Refused,
) -> Result<HttpResponse, PageError> {
    render(
        state,
        viewer,
        refused.status,
        None,
        None,
        Some(refused.message),
    )
    .await
}

async fn security_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    render(
        &state,
        &viewer,
        StatusCode::OK,
        None,
        query.notice.as_deref(),
        None,
    )
    .await
}

async fn begin_totp(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let now = state.clock.now();
    let done = factors::begin_totp(&state, &viewer.session, now).await;
    settled(&state, &viewer, done, "/account/security#totp").await
}

async fn confirm_totp(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let code = posted(&state, &viewer, (&req, &body), |form| {
        field(form, "code").map(str::to_owned)
    })?;
    let now = state.clock.now();
    match factors::confirm_totp(&state, &viewer.session, &code, now).await {
        Ok(Some(codes)) => Ok(show_codes(&state, &viewer, &codes)),
        Ok(None) => Ok(super::see_other("/account/security?notice=totp-on")),
        Err(FactorError::WrongCode) => {
            let message = super::sentence(&FactorError::WrongCode.to_string());
            render(
                &state,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(message),
                None,
                None,
            )
            .await
        }
        Err(e) => refused_here(&state, &viewer, e).await,
    }
}

async fn remove_totp(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let now = state.clock.now();
    let done = factors::remove_totp(&state, &viewer.session, now).await;
    back_with(&state, &viewer, done, "totp-off").await
}

async fn new_recovery_codes(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let now = state.clock.now();
    match factors::regenerate_recovery_codes(&state, &viewer.session, now).await {
        Ok(codes) => Ok(show_codes(&state, &viewer, &codes)),
        Err(e) => refused_here(&state, &viewer, e).await,
    }
}

/// The Security page again with a refusal, or the error page; the sign-in
/// page when the change asks for a fresh sign-in.
pub(super) async fn refused_here(
    state: &AppState,
    viewer: &Viewer,
    error: FactorError,
) -> Result<HttpResponse, PageError> {
    if matches!(error, FactorError::SignInAgain) {
        return Ok(super::see_other(SIGN_IN_AGAIN));
    }
    let done: Result<(), AppError> = Err(error.into());
    concluded_beside(state, viewer, done, SECURITY_PATH, |refused| {
        said_no(state, viewer, refused)
    })
    .await
}

/// Back to the Security page with `notice` once `done`; the page again,
/// saying why, when it was refused.
pub(super) async fn back_with(
    state: &AppState,
    viewer: &Viewer,
    done: Result<(), FactorError>,
    notice: &str,
) -> Result<HttpResponse, PageError> {
    settled(
        state,
        viewer,
        done,
        &format!("{SECURITY_PATH}?notice={notice}"),
    )
    .await
}

/// To `to` once `done`; otherwise as [`refused_here`].
async fn settled(
    state: &AppState,
    viewer: &Viewer,
    done: Result<(), FactorError>,
    to: &str,
) -> Result<HttpResponse, PageError> {
    match done {
        Ok(()) => Ok(super::see_other(to)),
        Err(e) => refused_here(state, viewer, e).await,
    }
}

/// The codes, this once, with a text file of them to download.
fn show_codes(state: &AppState, viewer: &Viewer, codes: &RecoveryCodes) -> HttpResponse {
    let shown: Vec<&str> = codes.expose().collect();
    let text = format!(
        "keygate recovery codes for {} at {}\nEach works once.\n\n{}\n",
        viewer.session.user.email,
        state.issuer,
        shown.join("\n")
    );
    let download_href = format!(
        "data:text/plain;charset=utf-8,{}",
        percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
    );
    page(
        StatusCode::OK,
        "recovery_codes",
        &viewer.layout(state, "Save your recovery codes", "security"),
        minijinja::context! { codes => shown, download_href },
    )
}
