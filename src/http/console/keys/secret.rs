//! The forms that hand out a secret (creating a key, rotating one), each
//! run once per form ID, and the one page that shows the secret, with its
//! CSV download.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;

use super::form::{KeyForm, key_request};
use super::shared::{caller, service};
use crate::duration::HumanDuration;
use crate::http::console::forms::{self, Claim};
use crate::http::console::run;
use crate::http::console::{PageError, Viewer, page, see_other};
use crate::http::error::AppError;
use crate::keys::{IssuedKey, PlainSecret};
use crate::state::AppState;
use crate::time::rfc3339;

/// What a form that hands out a secret does, under its one-time form ID.
pub(super) enum SecretAction {
    Create(KeyForm),
    Rotate {
        client_id: String,
        grace: Option<HumanDuration>,
    },
}

/// How a form that hands out a secret ended.
pub(super) enum Outcome {
    Issued(Box<IssuedKey>),
    /// Sent before: the key it acted on (empty while unknown).
    Repeated(String),
    /// Refused by the keys service: nothing was done. The key form comes
    /// back so the person can correct it.
    Refused(AppError, Option<Box<KeyForm>>),
}

/// Runs `action` once per form ID: a repeat goes to the key instead.
pub(super) async fn once(
    state: &AppState,
    viewer: &Viewer,
    form_id: String,
    action: SecretAction,
) -> Result<Outcome, PageError> {
    let now = state.clock.now();
    let owner = viewer.email().to_owned();
    let (service, caller) = (service(state), caller(viewer));
    let tagger = state.accounts.token_hasher.clone();
    run(state, viewer, move |conn| {
        if let Claim::Seen(client_id) = forms::claim(conn, &form_id, now)? {
            return Ok(Outcome::Repeated(client_id.unwrap_or_default()));
        }
        let outcome = match &action {
            SecretAction::Create(form) => key_request(&owner, form)
                .and_then(|request| service.create(conn, &caller, request, &tagger, now)),
            SecretAction::Rotate { client_id, grace } => {
                service.rotate(conn, &caller, client_id, *grace, &tagger, now)
            }
        };
        match outcome.map_err(AppError::from) {
            Ok(issued) => {
                forms::record(conn, &form_id, issued.client_id.as_str())?;
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

/// A form sent again: to the key, without its secret.
pub(super) fn already_shown(client_id: &str) -> HttpResponse {
    if client_id.is_empty() {
        see_other("/keys?notice=already-shown")
    } else {
        see_other(&format!("/keys/{client_id}?notice=already-shown"))
    }
}

/// The one page that shows a secret. `no-store` (from the security headers)
/// keeps it out of every cache, so the back button cannot bring it back,
/// and the secret is nowhere else to be had.
pub(super) fn secret_page(
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
            key => issued,
            secret => issued.client_secret.as_ref().map(PlainSecret::expose),
            rotated,
            csv_href,
            csv_name => format!("{}.csv", issued.client_id),
        },
    )
}

/// `client_id,client_secret,name,scopes,audiences,expires_at` with a header
/// row, written by [`crate::csv`]: quoted, and no cell a spreadsheet would
/// run as a formula (a scope or a name may begin with `=`).
fn csv_of(issued: &IssuedKey) -> String {
    let header = crate::csv::record([
        "client_id",
        "client_secret",
        "name",
        "scopes",
        "audiences",
        "expires_at",
    ]);
    let row = crate::csv::record([
        issued.client_id.to_string(),
        issued
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_owned())
            .unwrap_or_default(),
        issued.name.clone(),
        issued.scopes.to_string(),
        issued.audiences.to_vec().join(" "),
        issued.expires_at.map(rfc3339).unwrap_or_default(),
    ]);
    header + &row
}
