//! `/admin/teams`: every team with its role, notify address, members, live
//! keys and state, and creating one; `/admin/teams/{name}`: one team's
//! settings (role, notify address, description), its members (added and
//! removed), its keys, and disabling or enabling it. Every change goes
//! through `crate::teams`, as the CLI's and the API's do; a refusal comes
//! back beside the field it names.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::shared::{Errors, admin, errors_of, flag, live_keys_by_holder};
use crate::http::console::keys::{KeyRow, row};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded_beside, field, notice_for, page, posted, run,
};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::keys::{self, KeyFilter, KeyOwner};
use crate::state::AppState;
use crate::teams::{self, NewTeam, TeamChange};
use crate::users;

/// A team as the list shows it.
#[derive(Debug, Serialize)]
struct TeamRow {
    #[serde(flatten)]
    team: teams::TeamWithMembers,
    /// Its keys that are active or pending.
    live_keys: usize,
}

/// What a team form holds, kept when it comes back refused.
#[derive(Debug, Default, Serialize)]
struct TeamForm {
    name: String,
    role: String,
    notify: String,
    description: String,
}

impl TeamForm {
    fn blank() -> Self {
        Self {
            role: users::MEMBER_ROLE.to_owned(),
            ..Self::default()
        }
    }

    fn read(form: &Form) -> Result<Self, AppError> {
        Ok(Self {
            name: field(form, "name")?.trim().to_owned(),
            role: field(form, "role")?.trim().to_owned(),
            notify: field(form, "notify")?.trim().to_owned(),
            description: field(form, "description")?.trim().to_owned(),
        })
    }

    /// The form of a team as it is.
    fn of(team: &teams::Team) -> Self {
        Self {
            name: team.name.clone(),
            role: team.role.clone(),
            notify: team.notify_email.clone().unwrap_or_default(),
            description: team.description.clone(),
        }
    }

    /// An empty notify address: emails go to every enabled member.
    fn notify(&self) -> Option<&str> {
        (!self.notify.is_empty()).then_some(self.notify.as_str())
    }
}

async fn render_teams(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    (form, errors): (TeamForm, Errors),
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let (all, roles, keys) = run(state, viewer, move |conn| {
        let all = teams::list_teams(conn)?;
        let roles = users::list_roles(conn)?;
        let keys = keys::list_api_keys(conn, None, now)?;
        Ok::<_, AppError>((all, roles, keys))
    })
    .await?;
    let live = live_keys_by_holder(&keys);
    let rows: Vec<TeamRow> = all
        .into_iter()
        .map(|team| TeamRow {
            live_keys: live
                .get(&KeyOwner::team(&team.team.name))
                .copied()
                .unwrap_or(0),
            team,
        })
        .collect();
    let roles: Vec<String> = roles.into_iter().map(|r| r.name).collect();
    Ok(page(
        status,
        "teams",
        &viewer.layout(state, "Teams", "teams"),
        minijinja::context! { teams => rows, roles, form, errors, notice => notice_for(notice) },
    ))
}

pub(super) async fn teams_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let blank = (TeamForm::blank(), Errors::new());
    render_teams(
        &state,
        &viewer,
        StatusCode::OK,
        blank,
        query.notice.as_deref(),
    )
    .await
}

pub(super) async fn create_team(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), TeamForm::read)?;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (name, role, notify, description) = (
        form.name.clone(),
        form.role.clone(),
        form.notify().map(str::to_owned),
        form.description.clone(),
    );
    let done = state
        .db(move |conn| {
            let new = NewTeam {
                name: &name,
                role: (!role.is_empty()).then_some(role.as_str()),
                notify: notify.as_deref(),
                description: &description,
            };
            teams::create_team(conn, new, &actor, now).map_err(AppError::from)
        })
        .await;
    let next = format!("/admin/teams/{}?notice=team-created", form.name);
    concluded_beside(&state, &viewer, done, &next, |refused| {
        let again = (form, errors_of("create", refused));
        render_teams(
            &state,
            &viewer,
            StatusCode::UNPROCESSABLE_ENTITY,
            again,
            None,
        )
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(super) struct TeamPath {
    name: String,
}

/// What the team page's forms sent, kept when one comes back refused.
#[derive(Debug, Default)]
struct TeamPageForms {
    settings: Option<TeamForm>,
    member: String,
    errors: Errors,
}

async fn render_team(
    state: &AppState,
    viewer: &Viewer,
    (status, name): (StatusCode, String),
    forms: TeamPageForms,
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let (team, roles, keys) = run(state, viewer, move |conn| {
        let team = teams::find_team(conn, &name)?;
        let roles = users::list_roles(conn)?;
        let filter = KeyFilter {
            owner: Some(KeyOwner::team(&team.team.name)),
            status: None,
        };
        let keys = keys::load_keys(conn, None, &filter, now)?;
        Ok::<_, AppError>((team, roles, keys))
    })
    .await?;
    let live_keys = live_keys_by_holder(&keys).values().sum::<usize>();
    let rows: Vec<KeyRow> = keys.into_iter().map(|k| row(state, k, now)).collect();
    let roles: Vec<String> = roles.into_iter().map(|r| r.name).collect();
    let settings = forms.settings.unwrap_or_else(|| TeamForm::of(&team.team));
    let title = format!("Team {}", team.team.name);
    Ok(page(
        status,
        "team",
        &viewer.layout(state, &title, "teams"),
        minijinja::context! {
            team,
            keys => rows,
            live_keys,
            roles,
            settings,
            member => forms.member,
            errors => forms.errors,
            notice => notice_for(notice),
        },
    ))
}

pub(super) async fn team_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<TeamPath>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let at = (StatusCode::OK, path.into_inner().name);
    let notice = query.notice.as_deref();
    render_team(&state, &viewer, at, TeamPageForms::default(), notice).await
}

/// How a form of the team page ends: back to the page with a notice, or
/// the page again with the refusal beside its field in `form`.
async fn team_concluded<T>(
    state: &AppState,
    viewer: &Viewer,
    (name, notice): (String, &str),
    done: Result<T, AppError>,
    again: impl FnOnce(Errors) -> TeamPageForms,
    form: &str,
) -> Result<HttpResponse, PageError> {
    let next = format!("/admin/teams/{name}?notice={notice}");
    concluded_beside(state, viewer, done, &next, |refused| {
        let status = refused.status;
        let forms = again(errors_of(form, refused));
        render_team(state, viewer, (status, name), forms, None)
    })
    .await
}

pub(super) async fn update_team(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<TeamPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), TeamForm::read)?;
    let change = TeamChange {
        role: (!form.role.is_empty()).then(|| form.role.clone()),
        notify: Some(form.notify().map(str::to_owned)),
        description: Some(form.description.clone()),
        disabled: None,
    };
    let again = |errors| TeamPageForms {
        settings: Some(form),
        errors,
        ..TeamPageForms::default()
    };
    let at = (path.into_inner().name, "saved");
    change_team(&state, &viewer, at, change, (again, "settings")).await
}

pub(super) async fn set_team_state(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<TeamPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let disabled = posted(&state, &viewer, (&req, &body), |form| {
        flag(form, "disabled")?
            .ok_or_else(|| AppError::bad_request("disabled must be true or false"))
    })?;
    let change = TeamChange {
        disabled: Some(disabled),
        ..TeamChange::default()
    };
    let notice = if disabled {
        "team-disabled"
    } else {
        "team-enabled"
    };
    let again = |errors| TeamPageForms {
        errors,
        ..TeamPageForms::default()
    };
    let at = (path.into_inner().name, notice);
    change_team(&state, &viewer, at, change, (again, "state")).await
}

/// Changes the team `name` and ends as [`team_concluded`] does.
async fn change_team(
    state: &AppState,
    viewer: &Viewer,
    (name, notice): (String, &str),
    change: TeamChange,
    (again, form): (impl FnOnce(Errors) -> TeamPageForms, &str),
) -> Result<HttpResponse, PageError> {
    let (actor, now, team) = (viewer.email().to_owned(), state.clock.now(), name.clone());
    let done = state
        .db(move |conn| teams::update_team(conn, &team, &change, &actor, now))
        .await
        .map_err(AppError::from);
    team_concluded(state, viewer, (name, notice), done, again, form).await
}

/// Adds (`add`) or removes a member, by email.
async fn change_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    (path, body): (web::Path<TeamPath>, web::Bytes),
    add: bool,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let email = posted(&state, &viewer, (&req, &body), |form| {
        Ok(field(form, "email")?.trim().to_owned())
    })?;
    let name = path.into_inner().name;
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (team, who) = (name.clone(), email.clone());
    let done = state
        .db(move |conn| {
            if add && who.is_empty() {
                let mut empty =
                    AppError::invalid("invalid_email", "give the email of the person to add");
                empty.field = Some("email");
                return Err(empty);
            }
            let changed = if add {
                teams::add_member(conn, &team, &who, &actor, now)
            } else {
                teams::remove_member(conn, &team, &who, &actor, now)
            };
            changed.map_err(AppError::from)
        })
        .await;
    let (notice, form) = if add {
        ("member-added", "member")
    } else {
        ("member-removed", "members")
    };
    let again = |errors| TeamPageForms {
        member: if add { email } else { String::new() },
        errors,
        ..TeamPageForms::default()
    };
    team_concluded(&state, &viewer, (name, notice), done, again, form).await
}

pub(super) async fn add_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<TeamPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    change_member(req, state, current, (path, body), true).await
}

pub(super) async fn remove_member(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<TeamPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    change_member(req, state, current, (path, body), false).await
}
