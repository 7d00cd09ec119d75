//! `/api/v1/teams`: admins create and change teams and their members; a
//! member may read the teams they belong to (any other answers 404, as a
//! team that does not exist).

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::Caller;
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthorized, Unavailable, Unprocessable,
};
use super::{Page, PageQuery, Paged, given, location};
use crate::db::DbConnection;
use crate::http::error::AppError;
use crate::state::AppState;
use crate::teams::{self, NewTeam, TeamChange, TeamError, TeamWithMembers};

/// Runs a teams operation off the async workers; a refusal becomes the
/// API's answer.
async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut DbConnection) -> Result<T, TeamError> + Send + 'static,
) -> Result<T, AppError> {
    Ok(state.db(work).await?)
}

/// The team's name in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TeamPath {
    /// The team's name.
    name: String,
}

/// A team and one person in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// The team's name.
    name: String,
    /// The person's email (`@` may be percent-encoded).
    email: String,
}

/// The teams `caller` may read: every team for an admin, otherwise those
/// they belong to.
fn readable_teams(
    conn: &mut DbConnection,
    caller: &Caller,
) -> Result<Vec<TeamWithMembers>, TeamError> {
    if caller.is_admin() {
        return Ok(teams::list_teams(conn)?);
    }
    teams::teams_of(conn, &caller.email)?
        .iter()
        .map(|team| teams::find_team(conn, &team.name))
        .collect()
}

/// List teams by name, with their members (a `keygate:keys` caller: the
/// teams they belong to).
#[utoipa::path(
    tag = "teams",
    operation_id = "listTeams",
    params(PageQuery),
    responses(
        (status = 200, description = "a page of teams", body = Paged<TeamWithMembers>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/teams")]
pub async fn list(
    caller: Caller,
    query: web::Query<PageQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let page = Page::from_query(&query)?;
    let all = run(&state, move |conn| readable_teams(conn, &caller)).await?;
    let page: Paged<TeamWithMembers> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    /// `[a-z0-9][a-z0-9-]{0,62}`.
    name: String,
    /// The role bounding the scopes of the team's keys; default `member`.
    role: Option<String>,
    /// Where emails about the team's keys go; default: every enabled member.
    notify: Option<String>,
    #[serde(default)]
    description: String,
}

/// Create a team (admins).
#[utoipa::path(
    tag = "teams",
    operation_id = "createTeam",
    request_body = CreateTeam,
    responses(
        (status = 201, description = "the new team", body = TeamWithMembers,
            headers(("Location" = String, description = "URL of the new team"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/teams")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateTeam>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let body = body.into_inner();
    let now = state.clock.now();
    let team = run(&state, move |conn| {
        let new = NewTeam {
            name: &body.name,
            role: body.role.as_deref(),
            notify: body.notify.as_deref(),
            description: &body.description,
        };
        teams::create_team(conn, new, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location("teams", &team.team.name)))
        .json(team))
}

/// Read one team with its members (a `keygate:keys` caller: a team they
/// belong to).
#[utoipa::path(
    tag = "teams",
    operation_id = "getTeam",
    params(TeamPath),
    responses(
        (status = 200, description = "the team", body = TeamWithMembers),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/teams/{name}")]
pub async fn read(
    caller: Caller,
    path: web::Path<TeamPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let name = path.into_inner().name;
    let team = run(&state, move |conn| {
        let team = teams::find_team(conn, &name)?;
        let email = caller.email.to_lowercase();
        if caller.is_admin() || team.members.contains(&email) {
            Ok(team)
        } else {
            // Not the caller's: the same answer as for no such team.
            Err(TeamError::TeamNotFound { name })
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// A change to a team; a field left out stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeam {
    /// The role bounding the scopes of the team's keys.
    role: Option<String>,
    /// Where emails about the team's keys go; `null`: every enabled member.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>, nullable)]
    notify: Option<Option<String>>,
    description: Option<String>,
    /// `true` stops every key of the team at once; `false` brings them back.
    disabled: Option<bool>,
}

/// Change a team's role, notify address, description, or disable or
/// enable it (admins). Every server process obeys the change at its next
/// token request.
#[utoipa::path(
    tag = "teams",
    operation_id = "updateTeam",
    params(TeamPath),
    request_body = UpdateTeam,
    responses(
        (status = 200, description = "the changed team", body = TeamWithMembers),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[patch("/teams/{name}")]
pub async fn update(
    caller: Caller,
    path: web::Path<TeamPath>,
    body: web::Json<UpdateTeam>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let name = path.into_inner().name;
    let body = body.into_inner();
    let change = TeamChange {
        role: body.role,
        notify: body.notify,
        description: body.description,
        disabled: body.disabled,
    };
    let now = state.clock.now();
    let team = run(&state, move |conn| {
        teams::update_team(conn, &name, &change, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// Add a person to a team (admins); adding a member again changes nothing.
/// A disabled person is refused.
#[utoipa::path(
    tag = "teams",
    operation_id = "addTeamMember",
    params(MemberPath),
    responses(
        (status = 200, description = "the team with its members", body = TeamWithMembers),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[put("/teams/{name}/members/{email}")]
pub async fn add_member(
    caller: Caller,
    path: web::Path<MemberPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let MemberPath { name, email } = path.into_inner();
    let now = state.clock.now();
    let team = run(&state, move |conn| {
        teams::add_member(conn, &name, &email, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(team))
}

/// Remove a person from a team (admins). The team's keys keep working,
/// those the person created included.
#[utoipa::path(
    tag = "teams",
    operation_id = "removeTeamMember",
    params(MemberPath),
    responses(
        (status = 200, description = "the team with its members", body = TeamWithMembers),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[delete("/teams/{name}/members/{email}")]
pub async fn remove_member(
    caller: Caller,
    path: web::Path<MemberPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    caller.require_admin()?;
    let MemberPath { name, email } = path.into_inner();
    let now = state.clock.now();
    let team = run(&state, move |conn| {
        teams::remove_member(conn, &name, &email, &caller.email, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(team))
}
