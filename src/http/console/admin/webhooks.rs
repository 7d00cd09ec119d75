//! `/admin/webhooks`: every webhook endpoint with its URL, the event types
//! it receives and its state (on, switched off and why, failing since when),
//! and adding one. The form's answer is the one page that shows the new
//! endpoint's signing secret; the form carries a one-time ID (as the key
//! forms do), so a reload or the back button finds it used and goes to the
//! endpoint without its secret. Every change goes through
//! `crate::webhooks`, as the CLI's and the API's do; a refusal comes back
//! beside the field it names.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::shared::{Errors, admin, errors_of};
use crate::events::EventType;
use crate::http::console::forms::{self, Claim};
use crate::http::console::{
    Current, NoticeQuery, PageError, Refused, Viewer, field, notice_for, page, posted, run,
    see_other, sentence,
};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::state::AppState;
use crate::webhooks::{CreatedEndpoint, Endpoint, NewEndpoint, endpoint};

/// What an endpoint form holds, kept when it comes back refused.
#[derive(Debug, Default, Serialize)]
pub(super) struct EndpointForm {
    pub url: String,
    pub description: String,
    /// The ticked event types; none: every type.
    pub events: Vec<String>,
}

impl EndpointForm {
    pub(super) fn read(form: &Form) -> Result<Self, AppError> {
        Ok(Self {
            url: field(form, "url")?.trim().to_owned(),
            description: field(form, "description")?.trim().to_owned(),
            events: form.all("event").to_vec(),
        })
    }

    /// The form of an endpoint as it is: nothing ticked when it takes
    /// every type.
    pub(super) fn of(endpoint: &Endpoint) -> Self {
        Self {
            url: endpoint.url.clone(),
            description: endpoint.description.clone(),
            events: if endpoint.all_events {
                Vec::new()
            } else {
                endpoint.events.clone()
            },
        }
    }

    /// The types asked for: `None` (every type, later ones too) when none
    /// is ticked.
    pub(super) fn events(&self) -> Option<Vec<String>> {
        (!self.events.is_empty()).then(|| self.events.clone())
    }
}

/// Every event type, in the contract's order, for the checkboxes.
pub(super) fn event_types() -> Vec<&'static str> {
    EventType::ALL.iter().map(|t| t.as_str()).collect()
}

async fn render_list(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    (form, errors): (EndpointForm, Errors),
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let endpoints = run(state, viewer, |conn| {
        endpoint::list(conn).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        status,
        "webhooks",
        &viewer.layout(state, "Webhooks", "webhooks"),
        minijinja::context! {
            endpoints,
            form,
            errors,
            event_types => event_types(),
            form_id => forms::new_id(),
            notice => notice_for(notice),
        },
    ))
}

pub(super) async fn webhooks_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let blank = (EndpointForm::default(), Errors::new());
    let notice = query.notice.as_deref();
    render_list(&state, &viewer, StatusCode::OK, blank, notice).await
}

/// How adding an endpoint ended.
enum Added {
    Created(Box<CreatedEndpoint>),
    /// The form was sent before: the endpoint it made (empty while unknown).
    Repeated(String),
    /// Refused: nothing was made.
    Refused(AppError),
}

pub(super) async fn add_endpoint(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let (form, form_id) = posted(&state, &viewer, (&req, &body), |form| {
        Ok((
            EndpointForm::read(form)?,
            field(form, "form_id")?.to_owned(),
        ))
    })?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let sealer = Arc::clone(&state.webhook_sealer);
    let (url, description, events) = (form.url.clone(), form.description.clone(), form.events());
    let added = run(&state, &viewer, move |conn| {
        if let Claim::Seen(id) = forms::claim(conn, &form_id, now)? {
            return Ok(Added::Repeated(id.unwrap_or_default()));
        }
        let new = NewEndpoint {
            url: &url,
            events: events.as_deref(),
            description: &description,
        };
        match endpoint::create(conn, &sealer, new, &actor, now).map_err(AppError::from) {
            Ok(created) => {
                forms::record(conn, &form_id, &created.endpoint.id)?;
                Ok(Added::Created(Box::new(created)))
            }
            Err(e) if e.is_internal() || e.status == StatusCode::SERVICE_UNAVAILABLE => Err(e),
            Err(e) => {
                // Nothing was made: the corrected form may be sent again.
                forms::release(conn, &form_id)?;
                Ok(Added::Refused(e))
            }
        }
    })
    .await?;
    match added {
        Added::Created(created) => Ok(secret_page(&state, &viewer, &created)),
        Added::Repeated(id) if id.is_empty() => Ok(see_other(
            "/admin/webhooks?notice=webhook-secret-already-shown",
        )),
        Added::Repeated(id) => Ok(see_other(&format!(
            "/admin/webhooks/{id}?notice=webhook-secret-already-shown"
        ))),
        Added::Refused(e) => {
            let refused = Refused {
                status: e.status,
                field: e.field,
                message: sentence(&e.message),
            };
            let form = EndpointForm {
                url: without_credentials(&form.url),
                ..form
            };
            let again = (form, errors_of("create", refused));
            render_list(&state, &viewer, e.status, again, None).await
        }
    }
}

/// The one page that shows an endpoint's signing secret. `no-store` (from
/// the security headers) keeps it out of every cache; the secret is in no
/// URL and no log, and nowhere else to be had.
fn secret_page(state: &AppState, viewer: &Viewer, created: &CreatedEndpoint) -> HttpResponse {
    let secret = created.secret.reveal();
    page(
        StatusCode::OK,
        "webhook_secret",
        &viewer.layout(state, "Your new signing secret", "webhooks"),
        minijinja::context! {
            endpoint => &created.endpoint,
            secret => secret.as_str(),
        },
    )
}

/// The URL as typed, less any `user:password@`: a refused form does not
/// show credentials again (they are a secret, and refused for being there).
fn without_credentials(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            // Only a URL that cannot have credentials refuses to lose them.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_url_comes_back_without_its_credentials() {
        assert_eq!(
            without_credentials("https://user:hunter2@hooks.example.com/in"),
            "https://hooks.example.com/in"
        );
        assert_eq!(without_credentials("not a url"), "not a url");
        assert_eq!(
            without_credentials("https://hooks.example.com/in"),
            "https://hooks.example.com/in"
        );
    }
}
