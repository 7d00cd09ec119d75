//! `/admin/federations` ("Trusted workloads"): every federation with its
//! issuer, subject pattern, audience, claim conditions, owner, scopes and
//! who last used it, a form to add one, and removal behind a confirmation.
//! Every change goes through `crate::federation`, as the CLI's and the
//! API's do; a refusal comes back beside the field it names.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::shared::{Errors, admin, errors_of, parse_scopes};
use crate::federation::{self, FederationError, NewFederation};
use crate::http::console::{
    Current, NoticeQuery, PageError, Refused, Viewer, field, notice_for, page, posted, run,
    see_other, sentence,
};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::keys::{self, KeyError, KeyOwner};
use crate::scope::Audience;
use crate::state::AppState;

/// What the add form holds, kept when it comes back refused.
#[derive(Debug, Default, Serialize)]
struct FederationForm {
    name: String,
    issuer: String,
    subject: String,
    audience: String,
    /// One `NAME=VALUE` a line.
    claims: String,
    /// A person's email, or `team:NAME`.
    owner: String,
    scopes: String,
    /// Space- or line-separated API identifiers.
    resources: String,
}

impl FederationForm {
    fn read(form: &Form) -> Result<Self, AppError> {
        let get = |name| field(form, name).map(|v| v.trim().to_owned());
        Ok(Self {
            name: get("name")?,
            issuer: get("issuer")?,
            subject: get("subject")?,
            audience: get("audience")?,
            claims: get("claims")?,
            owner: get("owner")?,
            scopes: get("scopes")?,
            resources: get("resources")?,
        })
    }

    /// The request the form makes, or the first field that cannot be.
    fn request(&self) -> Result<NewFederation, AppError> {
        let owner = match self.owner.strip_prefix("team:") {
            Some(team) => KeyOwner::team(team.trim()),
            None if self.owner.is_empty() => {
                return Err(FederationError::InvalidOwner.into());
            }
            None => KeyOwner::person(&self.owner),
        };
        let claims = self
            .claims
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(federation::parse_claim)
            .collect::<Result<_, _>>()?;
        let resources = self
            .resources
            .split_whitespace()
            .map(|a| Audience::parse(a).map_err(KeyError::InvalidAudience))
            .collect::<Result<_, _>>()
            .map_err(AppError::from)?;
        Ok(NewFederation {
            name: self.name.clone(),
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
            audience: (!self.audience.is_empty()).then(|| self.audience.clone()),
            claims,
            owner,
            scopes: parse_scopes(&self.scopes)?,
            resources,
        })
    }
}

/// The keys service, and the admin as its caller: every key.
fn service(state: &AppState) -> keys::Service {
    keys::Service::new(state.issuer.clone(), state.key_limits())
}

fn caller(viewer: &Viewer) -> keys::Caller {
    keys::Caller::Person(keys::Person {
        email: viewer.email().to_owned(),
        reach: keys::Reach::EveryKey,
    })
}

async fn render_list(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    (form, errors): (FederationForm, Errors),
    notice: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let (keys, who, now) = (service(state), caller(viewer), state.clock.now());
    let federations = run(state, viewer, move |conn| {
        federation::list(conn, &keys, &who, now).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        status,
        "federations",
        &viewer.layout(state, "Trusted workloads", "federations"),
        minijinja::context! {
            federations,
            form,
            errors,
            issuer => &state.issuer,
            notice => notice_for(notice),
        },
    ))
}

pub(super) async fn federations_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let blank = (FederationForm::default(), Errors::new());
    render_list(
        &state,
        &viewer,
        StatusCode::OK,
        blank,
        query.notice.as_deref(),
    )
    .await
}

pub(super) async fn add_federation(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let form = posted(&state, &viewer, (&req, &body), FederationForm::read)?;
    let (keys, who, now) = (service(&state), caller(&viewer), state.clock.now());
    let (issuer, tagger) = (state.issuer.clone(), state.accounts.token_hasher.clone());
    let added = match form.request() {
        Err(e) => Err(e),
        Ok(new) => {
            run(&state, &viewer, move |conn| {
                Ok::<_, AppError>(
                    federation::add(conn, &keys, &who, new, &issuer, &tagger, now)
                        .map_err(AppError::from),
                )
            })
            .await?
        }
    };
    match added {
        Ok(_) => Ok(see_other("/admin/federations?notice=federation-added")),
        Err(e) if e.is_internal() || e.status == StatusCode::SERVICE_UNAVAILABLE => {
            Err(viewer.failed(&state, e))
        }
        Err(e) => {
            let refused = Refused {
                status: e.status,
                field: beside(e.field),
                message: sentence(&e.message),
            };
            let again = (form, errors_of("create", refused));
            render_list(&state, &viewer, e.status, again, None).await
        }
    }
}

/// The form's field a refusal belongs beside (a key's refusal names the
/// key's fields); above the form when it has no such field.
fn beside(field: Option<&'static str>) -> Option<&'static str> {
    match field? {
        "audiences" => Some("resources"),
        "team" => Some("owner"),
        f @ ("name" | "issuer" | "subject" | "audience" | "claims" | "owner" | "scopes"
        | "resources") => Some(f),
        _ => None,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct FederationPath {
    name: String,
}

/// `GET /admin/federations/{name}/remove`: what removing it does, and the
/// form that does it.
pub(super) async fn remove_confirmation(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<FederationPath>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let name = path.into_inner().name;
    let (keys, who, now) = (service(&state), caller(&viewer), state.clock.now());
    let federation = run(&state, &viewer, move |conn| {
        federation::get(conn, &keys, &who, &name, now).map_err(AppError::from)
    })
    .await?;
    Ok(page(
        StatusCode::OK,
        "federation_remove",
        &viewer.layout(&state, "Remove trusted workload", "federations"),
        minijinja::context! { federation },
    ))
}

pub(super) async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    path: web::Path<FederationPath>,
    body: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    posted(&state, &viewer, (&req, &body), |_| Ok(()))?;
    let name = path.into_inner().name;
    let (keys, who, now) = (service(&state), caller(&viewer), state.clock.now());
    run(&state, &viewer, move |conn| {
        federation::remove(conn, &keys, &who, &name, now).map_err(AppError::from)
    })
    .await?;
    Ok(see_other("/admin/federations?notice=federation-removed"))
}
