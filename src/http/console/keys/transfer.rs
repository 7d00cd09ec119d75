//! `/keys/{client_id}/transfer`: giving a key to another person or a team
//! (`keys::Service::transfer`), on a page of its own that says what changes
//! and what does not. The client ID and the secret stay; a refusal comes
//! back beside the field that chose the new owner, with nothing changed.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::detail::visible_key;
use super::shared::{KeyPath, caller, service};
use crate::http::console::{
    Current, PageError, Viewer, concluded_beside, field, page, posted, run, viewer,
};
use crate::http::error::AppError;
use crate::keys::{KeyError, KeyOwner};
use crate::state::AppState;

/// What the transfer form holds, kept when it comes back refused.
#[derive(Debug, Serialize)]
struct TransferForm {
    /// `person` or `team`: which of the two fields names the new owner.
    to_kind: String,
    to_email: String,
    to_team: String,
    reason: String,
}

impl TransferForm {
    fn blank() -> Self {
        Self {
            to_kind: "person".to_owned(),
            to_email: String::new(),
            to_team: String::new(),
            reason: String::new(),
        }
    }

    fn read(form: &crate::http::form::Form) -> Result<Self, AppError> {
        Ok(Self {
            to_kind: field(form, "to_kind")?.to_owned(),
            to_email: field(form, "to_email")?.trim().to_owned(),
            to_team: field(form, "to_team")?.trim().to_owned(),
            reason: field(form, "reason")?.trim().to_owned(),
        })
    }

    /// The new owner the form names, or why it names none (beside the
    /// field it belongs to).
    fn new_owner(&self) -> Result<KeyOwner, Refusal> {
        match (self.to_kind.as_str(), &self.to_email, &self.to_team) {
            ("person", email, _) if email.is_empty() => Err(Refusal::beside(
                "to_email",
                "Give the email of the person who is to hold the key.",
            )),
            ("person", email, _) => Ok(KeyOwner::person(email)),
            ("team", _, team) if team.is_empty() => Err(Refusal::beside(
                "to_team",
                "Choose the team that is to hold the key.",
            )),
            ("team", _, team) => Ok(KeyOwner::team(team)),
            _ => Err(Refusal::beside(
                "to_kind",
                "Choose whether a person or a team is to hold the key.",
            )),
        }
    }

    /// The field a refusal of the keys service belongs beside: the reason
    /// its own, anything else the new owner's.
    fn field_of(&self, named: Option<&str>) -> &'static str {
        match (named, self.to_kind.as_str()) {
            (Some("reason"), _) => "reason",
            (_, "team") => "to_team",
            _ => "to_email",
        }
    }
}

/// A refusal and the field it is shown beside.
#[derive(Debug)]
struct Refusal {
    field: &'static str,
    message: String,
}

impl Refusal {
    fn beside(field: &'static str, message: &str) -> Self {
        Self {
            field,
            message: message.to_owned(),
        }
    }
}

async fn render_transfer(
    state: &AppState,
    viewer: &Viewer,
    client_id: String,
    (status, form, refusal): (StatusCode, TransferForm, Option<Refusal>),
) -> Result<HttpResponse, PageError> {
    let key = visible_key(state, viewer, client_id).await?;
    let teams: Vec<String> = run(state, viewer, |conn| {
        crate::teams::list_teams(conn).map_err(AppError::from)
    })
    .await?
    .into_iter()
    .filter(|t| !t.team.disabled && key.team.as_deref() != Some(t.team.name.as_str()))
    .map(|t| t.team.name)
    .collect();
    let title = format!("Transfer {}", key.name);
    let errors: std::collections::BTreeMap<&str, String> =
        refusal.map(|r| (r.field, r.message)).into_iter().collect();
    Ok(page(
        status,
        "key_transfer",
        &viewer.layout(state, &title, "keys"),
        minijinja::context! { key, teams, form, errors },
    ))
}

pub(super) async fn transfer_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let blank = (StatusCode::OK, TransferForm::blank(), None);
    render_transfer(&state, &viewer, path.into_inner().client_id, blank).await
}

pub(super) async fn transfer(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<KeyPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), TransferForm::read)?;
    let client_id = path.into_inner().client_id;
    let to = match form.new_owner() {
        Ok(to) => to,
        Err(refusal) => {
            let again = (StatusCode::UNPROCESSABLE_ENTITY, form, Some(refusal));
            return render_transfer(&state, &viewer, client_id, again).await;
        }
    };
    let now = state.clock.now();
    let (service, caller) = (service(&state), caller(&viewer));
    let (id, reason) = (client_id.clone(), form.reason.clone());
    let done = state
        .db(move |conn| {
            let reason = (!reason.is_empty()).then_some(reason.as_str());
            service.transfer(conn, &caller, &id, &to, reason, now)?;
            // Given away: the key may now be out of the viewer's sight.
            match service.get(conn, &caller, &id, now) {
                Ok(_) => Ok(true),
                Err(KeyError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(AppError::from);
    let next = match done {
        Ok(false) => "/keys?notice=transferred-away".to_owned(),
        _ => format!("/keys/{client_id}?notice=transferred"),
    };
    concluded_beside(&state, &viewer, done, &next, |refused| {
        let refusal = Refusal {
            field: form.field_of(refused.field),
            message: refused.message,
        };
        let again = (refused.status, form, Some(refusal));
        render_transfer(&state, &viewer, client_id.clone(), again)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(kind: &str, email: &str, team: &str) -> TransferForm {
        TransferForm {
            to_kind: kind.to_owned(),
            to_email: email.to_owned(),
            to_team: team.to_owned(),
            reason: String::new(),
        }
    }

    #[test]
    fn the_form_names_a_person_or_a_team() {
        assert_eq!(
            form("person", "Bob@Example.com", "ops")
                .new_owner()
                .unwrap(),
            KeyOwner::person("bob@example.com")
        );
        assert_eq!(
            form("team", "bob@example.com", "ops").new_owner().unwrap(),
            KeyOwner::team("ops")
        );
        assert_eq!(
            form("person", "", "ops").new_owner().unwrap_err().field,
            "to_email"
        );
        assert_eq!(
            form("team", "", "").new_owner().unwrap_err().field,
            "to_team"
        );
        assert_eq!(
            form("", "a@b.c", "").new_owner().unwrap_err().field,
            "to_kind"
        );
    }
}
