//! `/api/v1/keys`: a `keygate:keys` caller sees and changes only their own
//! keys and their teams'; another's key (a person's, or a team's they are
//! not in) answers 404, exactly as a missing one does.

use actix_web::http::header;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::ErrorBody;
use super::auth::{AuthError, Caller};
use super::doc::{
    BadRequest, Conflict, Forbidden, Internal, NotFound, PayloadTooLarge, Unauthorized,
    Unavailable, Unprocessable,
};
use super::{Page, Paged, given, location, optional_json, secret_response};
use crate::db::DbConnection;
use crate::duration::HumanDuration;
use crate::http::error::AppError;
use crate::keys::NewCredential;
use crate::keys::envelope;
use crate::keys::public_keys::{self, PublicKeys};
use crate::keys::{
    self, AllowedNetworks, Envelope, EnvelopeChange, IssuedKey, Key, KeyError, KeyStatus,
    NewKeyRequest,
};
use crate::keys::{KeyFilter, KeyOwner};
use crate::scope::{ADMIN_SCOPE, Audience, ScopeError, ScopeSet};
use crate::state::AppState;

/// The keys service of this keygate.
pub(super) fn service(state: &AppState) -> keys::Service {
    keys::Service::new(state.issuer.clone(), state.key_limits())
}

/// Runs a keys operation off the async workers; a refusal becomes the
/// API's answer.
pub(super) async fn run<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&mut DbConnection) -> Result<T, KeyError> + Send + 'static,
) -> Result<T, AppError> {
    Ok(state.db(work).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this person's keys (another person than the caller needs `keygate:admin`).
    owner: Option<String>,
    /// Only this team's keys (a team the caller is not in needs `keygate:admin`);
    /// not with `owner`.
    team: Option<String>,
    /// Only keys in this status.
    #[param(value_type = Option<KeyStatus>)]
    status: Option<String>,
    /// Items per page, 1 to 100 (default 50).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 100)]
    limit: Option<String>,
    /// Opaque: the `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// The client ID in the path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's client ID (`kgc_...`).
    pub(super) client_id: String,
}

fn parse_status(text: &str) -> Result<KeyStatus, AppError> {
    KeyStatus::parse(text)
        .ok_or_else(|| AppError::bad_request("status must be pending, active, expired or revoked"))
}

/// Whose keys a list or a new key is about: a person or a team, never both.
fn holder(owner: Option<&str>, team: Option<&str>) -> Result<Option<KeyOwner>, AppError> {
    match (owner, team) {
        (Some(_), Some(_)) => Err(AppError::bad_request(
            "give owner or team, not both: a key belongs to one person or one team",
        )),
        (Some(owner), None) => Ok(Some(KeyOwner::person(owner))),
        (None, Some(team)) => Ok(Some(KeyOwner::team(team))),
        (None, None) => Ok(None),
    }
}

/// List keys, newest first (a `keygate:keys` caller: only their own and
/// their teams').
#[utoipa::path(
    tag = "keys",
    operation_id = "listKeys",
    params(ListQuery),
    responses(
        (status = 200, description = "a page of keys", body = Paged<Key>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "no user has the `owner` email, or no team the `team` name (user_not_found, team_not_found)", body = ErrorBody),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/keys")]
pub async fn list(
    caller: Caller,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let page = Page::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    if let Some(owner) = &query.owner
        && !caller.may_manage_keys_of(owner)
    {
        return Err(AuthError::InsufficientScope(ADMIN_SCOPE).into());
    }
    let owner = holder(query.owner.as_deref(), query.team.as_deref())?;
    let now = state.clock.now();
    let service = service(&state);
    let all = run(&state, move |conn| {
        let filter = KeyFilter { owner, status };
        service.list(conn, &caller.for_keys(), &filter, now)
    })
    .await?;
    let page: Paged<Key> = page.slice(all);
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    description: String,
    /// Each scope as its own string; the key's owner must be allowed to grant it.
    #[serde(default)]
    scopes: Vec<String>,
    /// Registered API identifiers the key may ask tokens for.
    #[serde(default)]
    audiences: Vec<String>,
    /// Such as `90d`; default and maximum: `KEYGATE_KEY_MAX_LIFETIME`.
    expires_in: Option<String>,
    /// The owning person's email: admins only; default: the caller.
    owner: Option<String>,
    /// The owning team's name, instead of `owner`: a team the caller is
    /// in (any team, for admins).
    team: Option<String>,
    /// Networks (CIDRs or addresses) the key may be used from; default:
    /// anywhere. A token request from elsewhere is `invalid_client`.
    #[serde(default)]
    allowed_networks: Vec<String>,
    /// Most tokens the key may be issued per minute (1 to 1,000,000);
    /// default: no limit. Past it, the token endpoint answers 429.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_tokens_per_minute: Option<u32>,
    /// The client's public key(s) as text: PEM (`-----BEGIN PUBLIC
    /// KEY-----`, several blocks allowed), a JWK or a JWKS; EC P-256,
    /// Ed25519 or RSA of at least 2048 bits. Given, the key has no secret
    /// (`client_secret` is `null`): its client authenticates with
    /// `private_key_jwt` client assertions signed by the private key.
    public_key: Option<String>,
}

/// A create request past every check that needs neither the caller nor the
/// store: scopes, audiences and lifetime parsed.
#[derive(Debug)]
pub struct CheckedCreateKey {
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
    pub audiences: Vec<Audience>,
    pub expires_in: Option<HumanDuration>,
    pub envelope: Envelope,
    pub credential: NewCredential,
}

impl CreateKey {
    /// Who the key is for, when the body names someone else than the caller.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The team the key is for, when the body names one.
    pub fn team(&self) -> Option<&str> {
        self.team.as_deref()
    }

    /// 422 `invalid_scope`, `invalid_audience` or `invalid_duration` for
    /// the first field that cannot be what it says.
    pub fn check(self) -> Result<CheckedCreateKey, AppError> {
        Ok(self.checked()?)
    }

    fn checked(self) -> Result<CheckedCreateKey, KeyError> {
        let scopes = parse_scopes(&self.scopes)?;
        let audiences = self
            .audiences
            .iter()
            .map(|a| Audience::parse(a).map_err(KeyError::InvalidAudience))
            .collect::<Result<Vec<_>, _>>()?;
        let expires_in = self
            .expires_in
            .as_deref()
            .map(|d| {
                d.parse::<HumanDuration>()
                    .map_err(|e| KeyError::InvalidExpiry(format!("expires_in {d:?}: {e}")))
            })
            .transpose()?;
        let envelope = Envelope {
            allowed_networks: AllowedNetworks::from_items(
                self.allowed_networks.iter().map(String::as_str),
            )?,
            max_tokens_per_minute: self
                .max_tokens_per_minute
                .map(envelope::check_tokens_per_minute)
                .transpose()?,
        };
        let credential = match self.public_key.as_deref() {
            None => NewCredential::Secret,
            Some(text) => NewCredential::PublicKeys(public_keys::parse(text)?.jwks),
        };
        Ok(CheckedCreateKey {
            name: self.name,
            description: self.description,
            scopes,
            audiences,
            expires_in,
            envelope,
            credential,
        })
    }
}

/// Each string must be exactly one scope token: `"read write"` is two, and
/// `" read"` none (the space is not part of any scope), so both are refused
/// rather than stored as something the caller did not write.
pub(super) fn parse_scopes(scopes: &[String]) -> Result<ScopeSet, KeyError> {
    for scope in scopes {
        let parsed = ScopeSet::parse(scope).map_err(|e| KeyError::InvalidScope(e.to_string()))?;
        match parsed.iter().collect::<Vec<_>>().as_slice() {
            [one] if one == scope => {}
            [_] => {
                return Err(KeyError::InvalidScope(
                    ScopeError(scope.clone()).to_string(),
                ));
            }
            _ => {
                return Err(KeyError::InvalidScope(format!(
                    "{scope:?} is not one scope; give each scope as its own string"
                )));
            }
        }
    }
    Ok(scopes.iter().cloned().collect())
}

/// Create a key; the secret is in this response only.
#[utoipa::path(
    tag = "keys",
    operation_id = "createKey",
    request_body = CreateKey,
    responses(
        (status = 201, description = "the new key with its secret", body = IssuedKey,
            headers(
                ("Cache-Control" = String, description = "`no-store`: the body holds a secret"),
                ("Location" = String, description = "URL of the new key"),
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys")]
pub async fn create(
    caller: Caller,
    body: web::Json<CreateKey>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let body = body.into_inner();
    if let Some(owner) = body.owner()
        && !caller.may_manage_keys_of(owner)
    {
        return Err(AuthError::InsufficientScope(ADMIN_SCOPE).into());
    }
    // A team the caller is not in is refused by the keys service.
    let owner =
        holder(body.owner(), body.team())?.unwrap_or_else(|| KeyOwner::person(&caller.email));
    let body = body.check()?;
    let service = service(&state);
    let tagger = state.accounts.token_hasher.clone();
    let now = state.clock.now();
    let issued = run(&state, move |conn| {
        let request = NewKeyRequest {
            owner,
            name: &body.name,
            description: &body.description,
            scopes: body.scopes,
            audiences: body.audiences,
            expires_in: body.expires_in,
            envelope: body.envelope,
            credential: body.credential,
        };
        service.create(conn, &caller.for_keys(), request, &tagger, now)
    })
    .await?;
    let mut builder = HttpResponse::Created();
    builder.insert_header((
        header::LOCATION,
        location("keys", issued.client_id.as_str()),
    ));
    Ok(secret_response(builder, &issued))
}

/// Read one key.
#[utoipa::path(
    tag = "keys",
    operation_id = "getKey",
    params(KeyPath),
    responses(
        (status = 200, description = "the key", body = Key),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[get("/keys/{client_id}")]
pub async fn read(
    caller: Caller,
    path: web::Path<KeyPath>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner().client_id;
    let now = state.clock.now();
    let service = service(&state);
    let key = run(&state, move |conn| {
        service.get(conn, &caller.for_keys(), &client_id, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}

/// A change to a key's usage envelope or public keys: each field given
/// replaces what the key has; a field left out stays.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    /// Networks (CIDRs or addresses) the key may be used from; `[]`: anywhere.
    allowed_networks: Option<Vec<String>>,
    /// Most tokens per minute (1 to 1,000,000); `null`: no limit.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<u32>, nullable, minimum = 1, maximum = 1_000_000)]
    max_tokens_per_minute: Option<Option<u32>>,
    /// A `private_key_jwt` key's new public key(s), replacing all it has
    /// (PEM, a JWK or a JWKS; list the old and the new during a roll-over).
    public_key: Option<String>,
}

impl UpdateKey {
    fn check(self) -> Result<(EnvelopeChange, Option<PublicKeys>), KeyError> {
        let keys = self
            .public_key
            .as_deref()
            .map(public_keys::parse)
            .transpose()?;
        Ok((self.envelope()?, keys))
    }

    fn envelope(self) -> Result<EnvelopeChange, KeyError> {
        let change = EnvelopeChange {
            allowed_networks: self
                .allowed_networks
                .map(|nets| AllowedNetworks::from_items(nets.iter().map(String::as_str)))
                .transpose()?,
            max_tokens_per_minute: self
                .max_tokens_per_minute
                .map(|limit| limit.map(envelope::check_tokens_per_minute).transpose())
                .transpose()?,
        };
        Ok(change)
    }
}

/// Change a key's usage envelope (its allowed networks and issuance limit)
/// or a `private_key_jwt` key's public keys. Every server process obeys the
/// change at its next token request.
#[utoipa::path(
    tag = "keys",
    operation_id = "updateKey",
    params(KeyPath),
    request_body = UpdateKey,
    responses(
        (status = 200, description = "the changed key", body = Key),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[patch("/keys/{client_id}")]
pub async fn update(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Json<UpdateKey>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner().client_id;
    let (change, keys) = body.into_inner().check().map_err(AppError::from)?;
    let now = state.clock.now();
    let service = service(&state);
    let key = run(&state, move |conn| {
        let caller = caller.for_keys();
        let replaced = keys
            .map(|keys| service.set_public_keys(conn, &caller, &client_id, &keys, now))
            .transpose()?;
        match replaced {
            Some(key) if change.is_empty() => Ok(key),
            _ => service.set_envelope(conn, &caller, &client_id, &change, now),
        }
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    /// How long the old secret keeps working, such as `1h`; default none. At
    /// most 30 days and never past the key's expiry (else 422 `grace_too_long`).
    grace: Option<String>,
}

impl RotateBody {
    /// The grace period; `0` or none means none. 422 `invalid_duration`.
    pub fn grace(&self) -> Result<Option<HumanDuration>, AppError> {
        let grace = self.grace.as_deref().map(keys::parse_grace).transpose()?;
        Ok(grace.flatten())
    }
}

/// Rotate a key: a new secret, the same client ID.
#[utoipa::path(
    tag = "keys",
    operation_id = "rotateKey",
    params(KeyPath),
    request_body(content = Option<RotateBody>, description = "may be left out"),
    responses(
        (status = 200, description = "the key with its new secret", body = IssuedKey,
            headers(("Cache-Control" = String, description = "`no-store`: the body holds a secret"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys/{client_id}/rotate")]
pub async fn rotate(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let client_id = path.into_inner().client_id;
    let body: RotateBody = optional_json(body).await?;
    let grace = body.grace()?;
    let service = service(&state);
    let tagger = state.accounts.token_hasher.clone();
    let now = state.clock.now();
    let issued = run(&state, move |conn| {
        service.rotate(conn, &caller.for_keys(), &client_id, grace, &tagger, now)
    })
    .await?;
    Ok(secret_response(HttpResponse::Ok(), &issued))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// Recorded in the audit log and the owner's email.
    reason: Option<String>,
}

/// Revoke a key; it cannot be undone.
#[utoipa::path(
    tag = "keys",
    operation_id = "revokeKey",
    params(KeyPath),
    request_body(content = Option<RevokeBody>, description = "may be left out"),
    responses(
        (status = 200, description = "the revoked key", body = Key),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[post("/keys/{client_id}/revoke")]
pub async fn revoke(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    revoke_key(caller, path.into_inner().client_id, body, state).await
}

/// Revoke a key, as `POST /keys/{client_id}/revoke` does.
#[utoipa::path(
    tag = "keys",
    operation_id = "deleteKey",
    params(KeyPath),
    request_body(content = Option<RevokeBody>, description = "may be left out"),
    responses(
        (status = 200, description = "the revoked key", body = Key),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = PayloadTooLarge),
        (status = 422, response = Unprocessable),
        (status = 500, response = Internal),
        (status = 503, response = Unavailable),
    )
)]
#[delete("/keys/{client_id}")]
pub async fn delete(
    caller: Caller,
    path: web::Path<KeyPath>,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    revoke_key(caller, path.into_inner().client_id, body, state).await
}

async fn revoke_key(
    caller: Caller,
    client_id: String,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let body: RevokeBody = optional_json(body).await?;
    let service = service(&state);
    let now = state.clock.now();
    let key = run(&state, move |conn| {
        let reason = body.reason.as_deref();
        service.revoke(conn, &caller.for_keys(), &client_id, reason, now)
    })
    .await?;
    Ok(HttpResponse::Ok().json(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(given: &[&str]) -> Result<ScopeSet, AppError> {
        Ok(parse_scopes(
            &given.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?)
    }

    #[test]
    fn each_string_is_exactly_one_scope() {
        assert_eq!(
            scopes(&["read", "write", "read"]).unwrap().to_string(),
            "read write"
        );
        for bad in ["read write", "", "a,b"] {
            assert_eq!(scopes(&[bad]).unwrap_err().code, "invalid_scope", "{bad:?}");
        }
    }

    /// Found by `benches/fuzz/` (mgmt_create_key): `" e"` passed as the
    /// one scope `e` and was stored with its space.
    #[test]
    fn a_scope_with_spaces_around_it_is_refused_not_stored() {
        for bad in [" e", "read ", " read "] {
            let error = scopes(&[bad]).unwrap_err();
            assert_eq!(error.code, "invalid_scope");
            assert!(
                error.message.contains("is not a valid scope"),
                "{}",
                error.message
            );
        }
    }
}
