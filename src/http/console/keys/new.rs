//! `/keys/new` and `POST /keys`: the form that creates a key (scopes ticked
//! by API, audience, expiry under the configured maximum, usage limits),
//! and the form again with each refusal beside its field.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::form::{KeyForm, parse_key_form};
use super::secret::{Outcome, SecretAction, already_shown, once, secret_page};
use super::shared::FieldErrors;
use crate::duration::HumanDuration;
use crate::http::console::forms;
use crate::http::console::{Current, PageError, Viewer, field, page, see_other, viewer};
use crate::http::console::{posted, run};
use crate::http::error::AppError;
use crate::scope::{self, ScopeSet};
use crate::state::AppState;

/// The scopes a person may tick, grouped by the API that defines them.
#[derive(Debug, Serialize)]
struct ScopeGroup {
    name: String,
    /// The API's audience; empty for keygate's own scopes.
    identifier: String,
    scopes: Vec<String>,
    /// Those of `scopes` that make the viewer's key wait for an admin's
    /// approval (none for an admin, whose keys never wait).
    approval: Vec<String>,
}

/// Whom the viewer may give a new key: themself, and the enabled teams
/// they belong to (an admin: every enabled team), as the owner choice's
/// `(value, label)` pairs.
async fn owner_choices(
    state: &AppState,
    viewer: &Viewer,
) -> Result<Vec<(String, String)>, PageError> {
    let (email, is_admin) = (viewer.email().to_owned(), viewer.is_admin());
    let teams = run(state, viewer, move |conn| {
        let teams = if is_admin {
            crate::teams::list_teams(conn)?
                .into_iter()
                .map(|t| t.team)
                .collect()
        } else {
            crate::teams::teams_of(conn, &email)?
        };
        Ok::<_, AppError>(teams)
    })
    .await?;
    let me = ("me".to_owned(), format!("Me ({})", viewer.email()));
    Ok(std::iter::once(me)
        .chain(
            teams
                .into_iter()
                .filter(|t| !t.disabled)
                .map(|t| (format!("team:{}", t.name), format!("Team {}", t.name))),
        )
        .collect())
}

async fn scope_groups(state: &AppState, viewer: &Viewer) -> Result<Vec<ScopeGroup>, PageError> {
    let role = viewer.session.user.role.clone();
    let is_admin = viewer.is_admin();
    run(state, viewer, move |conn| {
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
            .map(|api| {
                let scopes: Vec<String> = ScopeSet::from_stored(&api.scopes)
                    .iter()
                    .filter(|s| grantable.allows(s))
                    .map(str::to_owned)
                    .collect();
                let marked = ScopeSet::from_stored(&api.approval_scopes);
                let approval = scopes
                    .iter()
                    .filter(|s| !is_admin && marked.contains(s))
                    .cloned()
                    .collect();
                ScopeGroup {
                    scopes,
                    approval,
                    name: api.name,
                    identifier: api.identifier,
                }
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
                approval: Vec::new(),
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

async fn render_new(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: KeyForm,
    errors: FieldErrors,
) -> Result<HttpResponse, PageError> {
    let groups = scope_groups(state, viewer).await?;
    let owners = owner_choices(state, viewer).await?;
    let max = state.key_max_lifetime;
    let form = form.with_default_expiry(max).without_private_key();
    Ok(page(
        status,
        "key_new",
        &viewer.layout(state, "Create key", "keys"),
        minijinja::context! {
            form,
            errors,
            form_id => forms::new_id(),
            scope_groups => groups,
            owners,
            expiry_choices => expiry_choices(max),
            max_lifetime => max.map(HumanDuration::in_words),
        },
    ))
}

pub(super) async fn new_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    render_new(
        &state,
        &viewer,
        StatusCode::OK,
        KeyForm::default(),
        FieldErrors::default(),
    )
    .await
}

pub(super) async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = viewer(&req, &state, current).await?;
    let (key_form, form_id) = posted(&state, &viewer, (&req, &body), |form| {
        let key_form = parse_key_form(form)?;
        let form_id = field(form, "form_id")?.to_owned();
        Ok((key_form, form_id))
    })?;
    match once(&state, &viewer, form_id, SecretAction::Create(key_form)).await? {
        // A key without a secret has nothing to show once: its page shows
        // the public keys' thumbprints.
        Outcome::Issued(issued) if issued.client_secret.is_none() => Ok(see_other(&format!(
            "/keys/{}?notice=created-public-key",
            issued.client_id
        ))),
        Outcome::Issued(issued) => Ok(secret_page(&state, &viewer, &issued, false)),
        Outcome::Repeated(client_id) => Ok(already_shown(&client_id)),
        Outcome::Refused(error, Some(key_form)) => {
            let errors = FieldErrors::from_error(&error);
            render_new(&state, &viewer, error.status, *key_form, errors).await
        }
        Outcome::Refused(error, None) => Err(viewer.failed(&state, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
