//! The admin's pages: people (invite, role, key creation, disable), every
//! key with filters, the registered APIs and their scopes, roles, and the
//! audit log with filters and paging. Only a person whose role grants
//! everything reaches them; anyone else gets 403.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::keys::{EventRow, KeyRow, event_row, row};
use super::{
    Current, Viewer, concluded, csrf_refused, error_page, field, notice_for, page, parse_form,
    resource, viewer,
};
use crate::audit::{self, EventFilter};
use crate::http::error::AppError;
use crate::keys::{self, KeyStatus};
use crate::scope::{Audience, ScopeSet};
use crate::state::AppState;
use crate::users::{self, UserChanges};

const AUDIT_PAGE: i64 = 50;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/admin/people")
            .route(web::get().to(people))
            .route(web::post().to(invite)),
    )
    .service(resource("/admin/people/update").route(web::post().to(update_person)))
    .service(resource("/admin/keys").route(web::get().to(all_keys)))
    .service(resource("/admin/audit").route(web::get().to(audit_log)))
    .service(
        resource("/admin/apis")
            .route(web::get().to(apis))
            .route(web::post().to(add_api)),
    )
    .service(resource("/admin/apis/update").route(web::post().to(update_api)))
    .service(
        resource("/admin/roles")
            .route(web::get().to(roles))
            .route(web::post().to(set_role)),
    );
}

/// The signed-in admin, or the page that says why not.
async fn admin(
    req: &HttpRequest,
    state: &AppState,
    current: Current,
) -> Result<Viewer, HttpResponse> {
    let viewer = viewer(req, state, current).await?;
    if viewer.is_admin() {
        Ok(viewer)
    } else {
        let error = AppError::forbidden("admin_only", "Only administrators can open this page.");
        Err(error_page(state, Some(&viewer), &error))
    }
}

/// Checks the CSRF token of a posted form and parses it.
fn posted_form(
    req: &HttpRequest,
    state: &AppState,
    viewer: &Viewer,
    body: &[u8],
) -> Result<crate::http::form::Form, Box<HttpResponse>> {
    let form = parse_form(req, body).map_err(|e| Box::new(error_page(state, Some(viewer), &e)))?;
    if viewer.csrf_ok(&form) {
        Ok(form)
    } else {
        Err(Box::new(csrf_refused(state, Some(viewer))))
    }
}

#[derive(Debug, Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

#[derive(Debug, Serialize)]
struct PersonRow {
    email: String,
    name: String,
    role: String,
    disabled: bool,
    can_create_keys: bool,
    has_password: bool,
    active_keys: usize,
    is_me: bool,
}

#[derive(Debug, Default, Serialize)]
struct InviteForm {
    email: String,
    name: String,
    role: String,
}

impl InviteForm {
    /// An empty invitation, for a member by default.
    fn blank() -> Self {
        Self {
            role: "member".to_owned(),
            ..Self::default()
        }
    }
}

async fn render_people(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    invite: InviteForm,
    error: Option<String>,
    notice: Option<&str>,
) -> HttpResponse {
    let now = state.clock.now();
    let me = viewer.email().to_owned();
    let found = state
        .db(move |conn| {
            let people = users::list_users(conn)?;
            let roles = users::list_roles(conn)?;
            let keys = keys::list_api_keys(conn, None, now)?;
            Ok::<_, AppError>((people, roles, keys))
        })
        .await;
    let (people, roles, keys) = match found {
        Ok(found) => found,
        Err(e) => return error_page(state, Some(viewer), &e),
    };
    let rows: Vec<PersonRow> = people
        .into_iter()
        .map(|p| PersonRow {
            active_keys: keys
                .iter()
                .filter(|k| k.status == KeyStatus::Active && k.owner.eq_ignore_ascii_case(&p.email))
                .count(),
            is_me: p.email.eq_ignore_ascii_case(&me),
            has_password: p.password_hash.is_some(),
            email: p.email,
            name: p.name,
            role: p.role,
            disabled: p.disabled,
            can_create_keys: p.can_create_keys,
        })
        .collect();
    let role_names: Vec<String> = roles.into_iter().map(|r| r.name).collect();
    page(
        status,
        "people",
        &viewer.layout(state, "People", "people"),
        minijinja::context! {
            people => rows,
            roles => role_names,
            invite,
            error,
            notice => notice_for(notice),
        },
    )
}

async fn people(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    render_people(
        &state,
        &viewer,
        StatusCode::OK,
        InviteForm::blank(),
        None,
        query.notice.as_deref(),
    )
    .await
}

async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let form = or_page!(posted_form(&req, &state, &viewer, &body));
    let parsed = (|| {
        Ok::<_, AppError>(InviteForm {
            email: field(&form, "email")?.trim().to_owned(),
            name: field(&form, "name")?.trim().to_owned(),
            role: field(&form, "role")?.to_owned(),
        })
    })();
    let invite = or_page!(parsed.map_err(|e| error_page(&state, Some(&viewer), &e)));
    let (email, role, name) = (&invite.email, &invite.role, &invite.name);
    let now = state.clock.now();
    let sent = crate::accounts::invite(&state, email, role, name, viewer.email(), now)
        .await
        .map_err(AppError::from);
    concluded(
        &state,
        &viewer,
        sent,
        "/admin/people?notice=invited",
        |status, message| render_people(&state, &viewer, status, invite, Some(message), None),
    )
    .await
}

async fn update_person(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let form = or_page!(posted_form(&req, &state, &viewer, &body));
    let parsed = (|| {
        let email = field(&form, "email")?.to_owned();
        let flag = |name: &str| -> Result<Option<bool>, AppError> {
            match field(&form, name)? {
                "" => Ok(None),
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                other => Err(AppError::bad_request(format!(
                    "{name} must be true or false, not {other:?}"
                ))),
            }
        };
        let role = field(&form, "role")?.to_owned();
        Ok::<_, AppError>((email, flag("disabled")?, flag("can_create_keys")?, role))
    })();
    let (email, disabled, can_create_keys, role) =
        or_page!(parsed.map_err(|e| error_page(&state, Some(&viewer), &e)));
    let actor = viewer.email().to_owned();
    let now = state.clock.now();
    let done = state
        .db(move |conn| {
            let changes = UserChanges {
                disabled,
                can_create_keys,
                role: (!role.is_empty()).then_some(role.as_str()),
            };
            users::update_user(conn, &email, &changes, &actor, now).map_err(AppError::from)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/people?notice=saved",
        |status, message| {
            render_people(
                &state,
                &viewer,
                status,
                InviteForm::blank(),
                Some(message),
                None,
            )
        },
    )
    .await
}

/// The status filter's values; blank: every key.
const KEY_STATUS_FILTERS: [&str; 5] = ["", "active", "expiring", "expired", "revoked"];

#[derive(Debug, Default, Deserialize, Serialize)]
struct KeyFilters {
    #[serde(default)]
    owner: String,
    #[serde(default)]
    status: String,
}

async fn all_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<KeyFilters>,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let filters = query.into_inner();
    if !KEY_STATUS_FILTERS.contains(&filters.status.as_str()) {
        let refused = AppError::bad_request(format!(
            "{:?} is not a status: choose active, expiring, expired or revoked",
            filters.status
        ));
        return error_page(&state, Some(&viewer), &refused);
    }
    let now = state.clock.now();
    let found = state
        .db(move |conn| keys::list_api_keys(conn, None, now))
        .await;
    let keys = match found {
        Ok(keys) => keys,
        Err(e) => return error_page(&state, Some(&viewer), &e.into()),
    };
    let owner = filters.owner.trim().to_lowercase();
    let rows: Vec<KeyRow> = keys
        .into_iter()
        .filter(|k| owner.is_empty() || k.owner.to_lowercase().contains(&owner))
        .map(|k| row(&state, k, now))
        .filter(|r| match filters.status.as_str() {
            "" => true,
            "expiring" => r.expiring,
            "active" => r.status() == KeyStatus::Active,
            "expired" => r.status() == KeyStatus::Expired,
            "revoked" => r.status() == KeyStatus::Revoked,
            _ => false,
        })
        .collect();
    page(
        StatusCode::OK,
        "keys",
        &viewer.layout(&state, "All keys", "all-keys"),
        minijinja::context! {
            keys => rows,
            all_keys => true,
            may_create => viewer.session.user.can_create_keys,
            filters,
        },
    )
}

#[derive(Debug, Default, Deserialize, Serialize)]
struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    action: String,
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 time, inclusive.
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    page: Option<u32>,
}

async fn audit_log(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<AuditQuery>,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let query = query.into_inner();
    let page_no = query.page.unwrap_or(1).max(1);
    let filter = EventFilter {
        actor: non_empty(&query.actor),
        target: non_empty(&query.target),
        action: non_empty(&query.action),
        ..EventFilter::default()
    }
    .with_period(Some(&query.since), Some(&query.until));
    let filter = match filter {
        Ok(filter) => filter,
        Err(message) => {
            return error_page(&state, Some(&viewer), &AppError::bad_request(message));
        }
    };
    let offset = i64::from(page_no - 1) * AUDIT_PAGE;
    let found = state
        .db(move |conn| {
            // One more than a page: whether there is a next one.
            let events = audit::list_filtered(conn, &filter, AUDIT_PAGE + 1, offset)?;
            Ok::<_, AppError>((events, audit::recorded_actions(conn)?))
        })
        .await;
    let (mut events, actions) = match found {
        Ok(events) => events,
        Err(e) => return error_page(&state, Some(&viewer), &e),
    };
    let has_next = events.len() as i64 > AUDIT_PAGE;
    events.truncate(AUDIT_PAGE as usize);
    let rows: Vec<EventRow> = events.into_iter().map(event_row).collect();
    let link = |to: u32| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &query.actor),
            ("target", &query.target),
            ("action", &query.action),
            ("since", &query.since),
            ("until", &query.until),
        ] {
            if !v.is_empty() {
                q.append_pair(k, v);
            }
        }
        q.append_pair("page", &to.to_string());
        format!("/admin/audit?{}", q.finish())
    };
    page(
        StatusCode::OK,
        "audit",
        &viewer.layout(&state, "Audit log", "audit"),
        minijinja::context! {
            events => rows,
            filters => &query,
            actions,
            page => page_no,
            previous => (page_no > 1).then(|| link(page_no - 1)),
            next => has_next.then(|| link(page_no + 1)),
        },
    )
}

fn non_empty(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[derive(Debug, Default, Serialize)]
struct ApiForm {
    identifier: String,
    name: String,
    scopes: String,
}

async fn render_apis(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: ApiForm,
    error: Option<String>,
    notice: Option<&str>,
) -> HttpResponse {
    let found = state
        .db(|conn| crate::resource_servers::list_apis(conn).map_err(AppError::from))
        .await;
    match found {
        Ok(apis) => page(
            status,
            "apis",
            &viewer.layout(state, "APIs", "apis"),
            minijinja::context! { apis, form, error, notice => notice_for(notice) },
        ),
        Err(e) => error_page(state, Some(viewer), &e),
    }
}

async fn apis(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    render_apis(
        &state,
        &viewer,
        StatusCode::OK,
        ApiForm::default(),
        None,
        query.notice.as_deref(),
    )
    .await
}

/// The API form's fields as typed.
fn api_form(form: &crate::http::form::Form) -> Result<ApiForm, AppError> {
    Ok(ApiForm {
        identifier: field(form, "identifier")?.trim().to_owned(),
        name: field(form, "name")?.trim().to_owned(),
        scopes: field(form, "scopes")?.trim().to_owned(),
    })
}

fn parse_scopes(text: &str) -> Result<ScopeSet, AppError> {
    ScopeSet::parse(text).map_err(|e| AppError::invalid("invalid_scope", e.to_string()))
}

async fn add_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let form = or_page!(posted_form(&req, &state, &viewer, &body));
    let typed = or_page!(api_form(&form).map_err(|e| error_page(&state, Some(&viewer), &e)));
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (identifier, name, scopes) = (
        typed.identifier.clone(),
        typed.name.clone(),
        typed.scopes.clone(),
    );
    let done = state
        .db(move |conn| {
            let identifier = Audience::parse(&identifier)
                .map_err(|m| AppError::invalid("invalid_audience", m))?;
            let scopes = parse_scopes(&scopes)?;
            let api = crate::resource_servers::create_api(
                conn,
                &identifier,
                &name,
                &scopes,
                &actor,
                now,
            )?;
            Ok::<_, AppError>(api)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/apis?notice=saved",
        |status, message| render_apis(&state, &viewer, status, typed, Some(message), None),
    )
    .await
}

async fn update_api(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let form = or_page!(posted_form(&req, &state, &viewer, &body));
    let typed = or_page!(api_form(&form).map_err(|e| error_page(&state, Some(&viewer), &e)));
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let done = state
        .db(move |conn| {
            let scopes = parse_scopes(&typed.scopes)?;
            let (identifier, name) = (&typed.identifier, &typed.name);
            let api =
                crate::resource_servers::update_api(conn, identifier, name, &scopes, &actor, now)?;
            Ok::<_, AppError>(api)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/apis?notice=saved",
        |status, message| {
            render_apis(
                &state,
                &viewer,
                status,
                ApiForm::default(),
                Some(message),
                None,
            )
        },
    )
    .await
}

#[derive(Debug, Serialize)]
struct RoleRow {
    name: String,
    grants: String,
    scopes: Vec<String>,
    builtin: bool,
}

#[derive(Debug, Default, Serialize)]
struct RoleForm {
    name: String,
    scopes: String,
}

async fn render_roles(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    form: RoleForm,
    error: Option<String>,
    notice: Option<&str>,
) -> HttpResponse {
    let found = state
        .db(|conn| users::list_roles(conn).map_err(AppError::from))
        .await;
    let roles = match found {
        Ok(roles) => roles,
        Err(e) => return error_page(state, Some(viewer), &e),
    };
    let rows: Vec<RoleRow> = roles
        .into_iter()
        .map(|r| RoleRow {
            grants: if r.grants_all {
                "every scope, keygate's own included".to_owned()
            } else if r.grants_api_scopes {
                "every scope of every registered API".to_owned()
            } else {
                "only the scopes listed".to_owned()
            },
            scopes: r.scope_list(),
            name: r.name,
            builtin: r.builtin,
        })
        .collect();
    page(
        status,
        "roles",
        &viewer.layout(state, "Roles", "roles"),
        minijinja::context! { roles => rows, form, error, notice => notice_for(notice) },
    )
}

async fn roles(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    render_roles(
        &state,
        &viewer,
        StatusCode::OK,
        RoleForm::default(),
        None,
        query.notice.as_deref(),
    )
    .await
}

async fn set_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> HttpResponse {
    let viewer = or_page!(admin(&req, &state, current).await);
    let form = or_page!(posted_form(&req, &state, &viewer, &body));
    let parsed = (|| {
        Ok::<_, AppError>(RoleForm {
            name: field(&form, "name")?.trim().to_owned(),
            scopes: field(&form, "scopes")?.trim().to_owned(),
        })
    })();
    let typed = or_page!(parsed.map_err(|e| error_page(&state, Some(&viewer), &e)));
    let (actor, now) = (viewer.email().to_owned(), state.clock.now());
    let (name, scopes) = (typed.name.clone(), typed.scopes.clone());
    let done = state
        .db(move |conn| {
            let role = users::set_role(conn, &name, &parse_scopes(&scopes)?, &actor, now)?;
            Ok::<_, AppError>(role)
        })
        .await;
    concluded(
        &state,
        &viewer,
        done,
        "/admin/roles?notice=saved",
        |status, message| render_roles(&state, &viewer, status, typed, Some(message), None),
    )
    .await
}
