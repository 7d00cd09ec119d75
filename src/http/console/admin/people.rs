//! `/admin/people`: everyone with an account with their live keys,
//! inviting someone, and changing a person's role, key creation right or
//! disabled state (disabling goes through `leaving`'s confirmation).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::shared::{admin, flag, live_keys_by_holder};
use crate::accounts::factors::{self, SignInMethods};
use crate::http::console::{
    Current, NoticeQuery, PageError, Viewer, concluded, field, notice_for, page, posted, run,
};
use crate::http::error::AppError;
use crate::keys::{self, KeyOwner};
use crate::state::AppState;
use crate::users::{self, UserChanges};

#[derive(Debug, Serialize)]
struct PersonRow {
    email: String,
    name: String,
    role: String,
    disabled: bool,
    can_create_keys: bool,
    has_password: bool,
    /// How they sign in: password, single sign-on, authenticator app.
    methods: SignInMethods,
    /// Keys of theirs that are active or pending: what disabling them stops.
    live_keys: usize,
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
) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let me = viewer.email().to_owned();
    let (people, roles, keys, methods) = run(state, viewer, move |conn| {
        let people = users::list_users(conn)?;
        let roles = users::list_roles(conn)?;
        let keys = keys::list_api_keys(conn, None, now)?;
        let methods = factors::sign_in_methods(conn)?;
        Ok::<_, AppError>((people, roles, keys, methods))
    })
    .await?;
    let live = live_keys_by_holder(&keys);
    let rows: Vec<PersonRow> = people
        .into_iter()
        .map(|p| PersonRow {
            live_keys: live.get(&KeyOwner::person(&p.email)).copied().unwrap_or(0),
            is_me: p.email.eq_ignore_ascii_case(&me),
            has_password: p.password_hash.is_some(),
            methods: methods.get(&p.email).copied().unwrap_or_default(),
            email: p.email,
            name: p.name,
            role: p.role,
            disabled: p.disabled,
            can_create_keys: p.can_create_keys,
        })
        .collect();
    let role_names: Vec<String> = roles.into_iter().map(|r| r.name).collect();
    Ok(page(
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
    ))
}

pub(super) async fn people(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let notice = query.notice.as_deref();
    render_people(
        &state,
        &viewer,
        StatusCode::OK,
        InviteForm::blank(),
        None,
        notice,
    )
    .await
}

pub(super) async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let invite = posted(&state, &viewer, (&req, &body), |form| {
        Ok(InviteForm {
            email: field(form, "email")?.trim().to_owned(),
            name: field(form, "name")?.trim().to_owned(),
            role: field(form, "role")?.to_owned(),
        })
    })?;
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

pub(super) async fn update_person(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let (email, disabled, can_create_keys, role) =
        posted(&state, &viewer, (&req, &body), |form| {
            let email = field(form, "email")?.to_owned();
            let role = field(form, "role")?.to_owned();
            Ok((
                email,
                flag(form, "disabled")?,
                flag(form, "can_create_keys")?,
                role,
            ))
        })?;
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
            let blank = InviteForm::blank();
            render_people(&state, &viewer, status, blank, Some(message), None)
        },
    )
    .await
}
