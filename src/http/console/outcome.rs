//! How a console handler ends when it cannot show its page: the error page
//! (in the viewer's layout when there is one), carried as [`PageError`] so
//! handlers return `Result<HttpResponse, PageError>` and use `?`; and the
//! steps every handler shares that may end that way: running database work,
//! reading a posted form with its CSRF token, concluding a form that changes
//! something.

use actix_web::body::MessageBody;
use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use super::{Layout, Viewer, page, parse_form, see_other, sentence};
use crate::db::DbConnection;
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::state::AppState;

/// The error page for a failure, with the status it deserves. Internal
/// failures are logged with their cause and shown without it.
pub(super) fn error_page(
    state: &AppState,
    viewer: Option<&Viewer>,
    error: &AppError,
) -> HttpResponse {
    let (heading, message) = if error.status == StatusCode::SERVICE_UNAVAILABLE {
        // Logged once per outage by the pool's reachability watch, not
        // once per request.
        tracing::debug!(%error, "console: database unavailable");
        (
            "keygate is briefly unavailable",
            "The database cannot be reached right now. Nothing was changed; try again in a moment."
                .to_owned(),
        )
    } else if error.is_internal() {
        tracing::error!(%error, "console request failed");
        (
            "Something went wrong",
            "Nothing was changed. The server's log has the details.".to_owned(),
        )
    } else if error.status == StatusCode::NOT_FOUND {
        ("Not found", error.message.clone())
    } else if error.status == StatusCode::FORBIDDEN {
        ("Not allowed", error.message.clone())
    } else {
        ("That did not work", error.message.clone())
    };
    let layout = match viewer {
        Some(v) => v.layout(state, heading, ""),
        None => Layout::public(state, heading, ""),
    };
    page(
        error.status,
        "error",
        &layout,
        minijinja::context! { heading, message },
    )
}

/// A page that ends a console handler early, already rendered: the error
/// page of [`error_page`] (in the viewer's layout, internal failures logged
/// and not detailed, 503 for an unavailable database), or the redirect to
/// sign in. `ResponseError::error_response` cannot see the request, whose
/// viewer the page is for, so the page is made where the failure is met
/// ([`Viewer::failed`], `From<HttpResponse>`) and handlers returning
/// `Result<HttpResponse, PageError>` pass it on with `?`.
#[derive(Debug)]
pub(super) struct PageError {
    status: StatusCode,
    headers: HeaderMap,
    body: web::Bytes,
}

impl From<HttpResponse> for PageError {
    fn from(response: HttpResponse) -> Self {
        let (head, body) = response.into_parts();
        Self {
            status: head.status(),
            headers: head.headers().clone(),
            // Pages and redirects are whole bodies, never streams.
            body: body.try_into_bytes().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "console page answered {}", self.status)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        for (name, value) in &self.headers {
            response.append_header((name.clone(), value.clone()));
        }
        response.body(self.body.clone())
    }
}

/// A refusal the person can act on (bad input, a rule), as opposed to
/// keygate failing (internal error, database down).
fn is_refusal(error: &AppError) -> bool {
    !error.is_internal() && error.status != StatusCode::SERVICE_UNAVAILABLE
}

impl PageError {
    /// The error page for `error` for someone not signed in (or whose
    /// session could not be read).
    pub(super) fn public(state: &AppState, error: impl Into<AppError>) -> Self {
        error_page(state, None, &error.into()).into()
    }
}

/// Runs database work off the async workers; a failure becomes the error
/// page in the viewer's layout.
pub(super) async fn run<T, E>(
    state: &AppState,
    viewer: &Viewer,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
) -> Result<T, PageError>
where
    T: Send + 'static,
    E: Into<AppError>
        + From<diesel::r2d2::PoolError>
        + From<actix_web::error::BlockingError>
        + Send
        + 'static,
{
    state.db(work).await.map_err(|e| viewer.failed(state, e))
}

/// The viewer's posted form: parsed, its fields read by `fields`, then its
/// CSRF token checked (nothing is done without it). Each failure is its
/// page.
pub(super) fn posted<T>(
    state: &AppState,
    viewer: &Viewer,
    (req, body): (&HttpRequest, &[u8]),
    fields: impl FnOnce(&Form) -> Result<T, AppError>,
) -> Result<T, PageError> {
    let form = parse_form(req, body).map_err(|e| viewer.failed(state, e))?;
    let values = fields(&form).map_err(|e| viewer.failed(state, e))?;
    if !viewer.csrf_ok(&form) {
        return Err(csrf_refused(state, Some(viewer)).into());
    }
    Ok(values)
}

/// How a posted form that changes something ends: on to `next` (a 303, so a
/// reload does not post again), its page once more with the refusal, or
/// the error page when keygate failed.
pub(super) async fn concluded<T, F, Fut>(
    state: &AppState,
    viewer: &Viewer,
    done: Result<T, AppError>,
    next: &str,
    again: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(StatusCode, String) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, PageError>>,
{
    concluded_beside(state, viewer, done, next, |refused| {
        again(refused.status, refused.message)
    })
    .await
}

/// A refusal as a form shows it: its status, the field it names (if any)
/// and its message as a sentence.
#[derive(Debug)]
pub(super) struct Refused {
    pub status: StatusCode,
    pub field: Option<&'static str>,
    pub message: String,
}

/// As [`concluded`], for a form that shows a refusal beside the field the
/// refusal names.
pub(super) async fn concluded_beside<T, F, Fut>(
    state: &AppState,
    viewer: &Viewer,
    done: Result<T, AppError>,
    next: &str,
    again: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(Refused) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, PageError>>,
{
    match done {
        Ok(_) => Ok(see_other(next)),
        Err(e) if is_refusal(&e) => {
            let refused = Refused {
                status: e.status,
                field: e.field,
                message: sentence(&e.message),
            };
            again(refused).await
        }
        Err(e) => Err(viewer.failed(state, e)),
    }
}

/// A form whose CSRF token is wrong or missing: nothing is done.
pub(super) fn csrf_refused(state: &AppState, viewer: Option<&Viewer>) -> HttpResponse {
    let error = AppError::forbidden(
        "csrf_token_invalid",
        "This form has expired or did not come from this keygate. \
         Nothing was changed: reload the page and try again.",
    );
    error_page(state, viewer, &error)
}
