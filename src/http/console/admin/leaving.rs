//! `/admin/people/disable`: disabling a person, on a confirmation page that
//! lists the live keys that would stop with them (name, last used, from
//! where) and offers to give them all to a person or a team in the same
//! step (`keys::Service::disable_person`: one transaction, so a transfer
//! refused for one key changes nothing, and the refusal names that key).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::shared::admin;
use crate::http::console::keys::{caller, service};
use crate::http::console::{
    Current, PageError, Viewer, field, page, posted, run, see_other, sentence,
};
use crate::http::error::AppError;
use crate::keys::{KeyError, KeyOwner};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(super) struct PersonQuery {
    #[serde(default)]
    email: String,
}

/// What the confirmation form holds, kept when it comes back refused.
#[derive(Debug, Serialize)]
struct LeavingForm {
    email: String,
    /// `stop`, `person` or `team`: what becomes of the live keys.
    keys: String,
    to_email: String,
    to_team: String,
}

impl LeavingForm {
    fn read(form: &crate::http::form::Form) -> Result<Self, AppError> {
        Ok(Self {
            email: field(form, "email")?.trim().to_owned(),
            keys: field(form, "keys")?.to_owned(),
            to_email: field(form, "to_email")?.trim().to_owned(),
            to_team: field(form, "to_team")?.trim().to_owned(),
        })
    }

    /// Who is to receive the keys (`None`: they stop), or the field to
    /// fill in first and what to put there.
    fn new_owner(&self) -> Result<Option<KeyOwner>, (&'static str, &'static str)> {
        match self.keys.as_str() {
            "" | "stop" => Ok(None),
            "person" if self.to_email.is_empty() => Err((
                "to_email",
                "Give the email of the person who is to receive the keys.",
            )),
            "person" => Ok(Some(KeyOwner::person(&self.to_email))),
            "team" if self.to_team.is_empty() => {
                Err(("to_team", "Choose the team that is to receive the keys."))
            }
            "team" => Ok(Some(KeyOwner::team(&self.to_team))),
            _ => Err(("keys", "Choose what becomes of the keys.")),
        }
    }

    /// The field beside which a refused transfer is shown.
    fn transfer_field(&self) -> &'static str {
        if self.keys == "team" {
            "to_team"
        } else {
            "to_email"
        }
    }
}

/// Refusals by field; `form` above the form.
type Errors = BTreeMap<&'static str, String>;

async fn render_confirmation(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: LeavingForm,
    errors: Errors,
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let service = service(state);
    let email = form.email.clone();
    let (person, live, teams) = run(state, viewer, move |conn| {
        let person = crate::users::find_user_by_email(conn, &email)?;
        let live = service.live_keys_of(conn, &person.email, now)?;
        let teams: Vec<String> = crate::teams::list_teams(conn)?
            .into_iter()
            .filter(|t| !t.team.disabled)
            .map(|t| t.team.name)
            .collect();
        Ok::<_, AppError>((person, live, teams))
    })
    .await?;
    let title = format!("Disable {}", person.email);
    Ok(page(
        status,
        "person_disable",
        &viewer.layout(state, &title, "people"),
        minijinja::context! {
            // Not `person`: the layout's name for the viewer.
            leaving => minijinja::context! {
                email => person.email,
                name => person.name,
                disabled => person.disabled,
            },
            keys => live,
            teams,
            form,
            errors,
        },
    ))
}

pub(super) async fn confirmation(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<PersonQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = LeavingForm {
        email: query.into_inner().email,
        keys: "stop".to_owned(),
        to_email: String::new(),
        to_team: String::new(),
    };
    render_confirmation(&state, &viewer, StatusCode::OK, form, Errors::new()).await
}

pub(super) async fn disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), LeavingForm::read)?;
    let to = match form.new_owner() {
        Ok(to) => to,
        Err((field, message)) => {
            let errors = Errors::from([(field, message.to_owned())]);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return render_confirmation(&state, &viewer, status, form, errors).await;
        }
    };
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let (email, transferring) = (form.email.clone(), to.is_some());
    let done = state
        .db(move |conn| service.disable_person(conn, &caller, &email, to.as_ref(), now))
        .await;
    let error = match done {
        Ok(_) if transferring => return Ok(see_other("/admin/people?notice=disabled-transferred")),
        Ok(_) => return Ok(see_other("/admin/people?notice=disabled")),
        Err(error) => error,
    };
    // A refused transfer goes beside the new owner's field; anything else
    // (the last admin, say) above the form.
    let slot = match &error {
        KeyError::InTransfer { .. } => form.transfer_field(),
        _ => "form",
    };
    let error = AppError::from(error);
    if error.is_internal() || error.status == StatusCode::SERVICE_UNAVAILABLE {
        return Err(viewer.failed(&state, error));
    }
    let errors = Errors::from([(slot, sentence(&error.message))]);
    render_confirmation(&state, &viewer, error.status, form, errors).await
}
