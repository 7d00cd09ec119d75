//! API keys in the database: create, list, rotate, revoke, and the lookup the
//! token endpoint makes on every request.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::envelope::{AllowedNetworks, Envelope, EnvelopeChange};
use super::last_use::LastUse;
use super::model::{ApiKey, IssuedKey, KeyView, NewApiKey};
use super::secret::{ClientId, PlainSecret, SecretHash};
use crate::audit::{self, Action};
use crate::db::schema::{api_keys, roles, users};
use crate::db::{DbConnection, write_transaction};
use crate::duration::HumanDuration;
use crate::error::AppError;
use crate::mail::{self, Event};
use crate::resource_servers;
use crate::resource_servers::ApiScopes;
use crate::scope::{self, Audience, Audiences, ScopeSet, audiences_to_stored};
use crate::signing::TokenHasher;
use crate::text;
use crate::time::{from_db, rfc3339};
use crate::users::{Role, User};

const MAX_NAME_LEN: usize = 200;
const MAX_DESCRIPTION_LEN: usize = 2000;

/// The limits every key creation obeys, whoever asks (CLI, API, console).
#[derive(Debug, Clone, Copy)]
pub struct KeyLimits {
    /// Longest expiry a key may be given (`None`: keys may never expire).
    pub max_lifetime: Option<HumanDuration>,
    /// How long before expiry the owner is warned.
    pub expiry_warning: HumanDuration,
    /// Active (not revoked, not expired) keys one person may hold.
    pub max_keys_per_user: Option<u32>,
}

/// What a caller asks for when creating a key; parsed, not yet checked
/// against the owner's role or the registered APIs.
pub struct NewKeyRequest<'a> {
    pub owner_email: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub scopes: ScopeSet,
    pub audiences: Vec<Audience>,
    pub expires_in: Option<HumanDuration>,
    /// Allowed networks and issuance limit (empty: anywhere, no limit).
    pub envelope: Envelope,
}

/// Checks every rule that does not need the database.
fn check_request(
    request: &NewKeyRequest<'_>,
    max_lifetime: Option<HumanDuration>,
    now: DateTime<Utc>,
) -> Result<Option<NaiveDateTime>, AppError> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(AppError::invalid(
            "invalid_name",
            format!("a key needs a name of 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if request.description.len() > MAX_DESCRIPTION_LEN {
        return Err(AppError::invalid(
            "invalid_description",
            format!("the description may hold at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    text::refuse_control_characters("invalid_name", "key's name", request.name)?;
    text::refuse_control_characters("invalid_description", "description", request.description)?;
    let lifetime = match (request.expires_in, max_lifetime) {
        (Some(asked), Some(max)) if asked > max => {
            return Err(AppError::invalid(
                "expiry_too_long",
                format!(
                    "expiry {asked} is past the configured maximum of {max} (KEYGATE_KEY_MAX_LIFETIME)"
                ),
            ));
        }
        (Some(asked), _) => Some(asked),
        (None, max) => max,
    };
    Ok(lifetime.map(|d| (now + d.as_chrono()).naive_utc()))
}

/// Checks the key's scopes against what exists and what the owner's role may
/// grant, and its audiences against the registered APIs; returns the
/// audiences to store. Without audiences given, they follow from the scopes
/// (the APIs that define them), so the key's tokens name an API that accepts
/// them. With audiences given, every API scope must belong to one of them:
/// a grant's scopes belong to its API, as in Auth0 and Keycloak.
fn check_grants(
    conn: &mut DbConnection,
    owner: &User,
    request: &NewKeyRequest<'_>,
) -> Result<Vec<Audience>, AppError> {
    let role = crate::users::find_role(conn, &owner.role)?;
    let apis = resource_servers::load_api_scopes(conn, None)?;
    let registered = apis.all();
    let grantable = role.grantable(|| Ok(registered.clone()))?;
    for scope in request.scopes.iter() {
        if !scope::is_builtin(scope) && !registered.contains(scope) {
            return Err(AppError::invalid(
                "unknown_scope",
                format!("scope {scope:?} is not registered by any API (see `keygate apis add`)"),
            ));
        }
        if !grantable.allows(scope) {
            return Err(AppError::forbidden(
                "scope_not_grantable",
                format!(
                    "role {:?} of {} may not grant scope {scope:?}",
                    role.name, owner.email
                ),
            ));
        }
    }
    for audience in &request.audiences {
        if apis.of(audience.as_str()).is_none() {
            return Err(AppError::invalid(
                "unknown_audience",
                format!("audience {audience} is not a registered API (see `keygate apis add`)"),
            ));
        }
    }
    if request.audiences.is_empty() {
        return Ok(apis.defining_any(&request.scopes));
    }
    if let Some(scope) = apis.first_outside(&request.scopes, &request.audiences) {
        let given = audiences_to_stored(&request.audiences).replace(' ', ", ");
        return Err(AppError::invalid(
            "scope_outside_audience",
            format!(
                "scope {scope:?} belongs to none of the audiences given ({given}): \
                 add the audience of the API that defines it (see `keygate apis list`), \
                 or give no audience and let the scopes decide"
            ),
        ));
    }
    Ok(request.audiences.clone())
}

/// Creates a key and returns it with its secret, shown this once. The key,
/// its audit event and (with the outbox) its email are written together or
/// not at all.
pub fn create_api_key(
    conn: &mut DbConnection,
    request: NewKeyRequest<'_>,
    limits: KeyLimits,
    tagger: &TokenHasher,
    (issuer, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<IssuedKey, AppError> {
    let expiry_warning = limits.expiry_warning;
    let expires_at = check_request(&request, limits.max_lifetime, now)?;
    let client_id = ClientId::generate();
    let secret = PlainSecret::generate();
    let hash = secret
        .hash()
        .map_err(|e| AppError::internal(HashError(e)))?;
    let lookup = secret.lookup_tag(tagger);
    let key = write_transaction(conn, |conn| {
        let owner = crate::users::find_user_by_email(conn, request.owner_email)?;
        if owner.disabled {
            return Err(AppError::invalid(
                "owner_disabled",
                format!("user {} is disabled", owner.email),
            ));
        }
        if !owner.can_create_keys {
            return Err(AppError::forbidden(
                "key_creation_disabled",
                format!(
                    "user {} may not create keys: an administrator switched key creation off",
                    owner.email
                ),
            ));
        }
        if let Some(max) = limits.max_keys_per_user {
            refuse_past_the_limit(conn, &owner, max, now)?;
        }
        let audiences = check_grants(conn, &owner, &request)?;
        let new = NewApiKey {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: client_id.as_str(),
            owner_id: &owner.id,
            name: request.name.trim(),
            description: request.description.trim(),
            scopes: request.scopes.to_string(),
            audiences: audiences_to_stored(&audiences),
            secret_hash: hash.as_str(),
            secret_lookup: &lookup,
            created_by: actor,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            expires_at,
            allowed_networks: request.envelope.allowed_networks.to_stored(),
            max_tokens_per_minute: stored_limit(request.envelope.max_tokens_per_minute),
        };
        diesel::insert_into(api_keys::table)
            .values(&new)
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::KeyCreated,
                target: client_id.as_str(),
                source_addr: None,
                details: json!({
                    "name": new.name,
                    "owner": owner.email,
                    "scopes": request.scopes.to_vec(),
                    "audiences": audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
                    "expires_at": expires_at.map(|t| rfc3339(from_db(t))),
                    "allowed_networks": request.envelope.allowed_networks.to_vec(),
                    "max_tokens_per_minute": request.envelope.max_tokens_per_minute,
                }),
            },
        )?;
        let key = find_key(conn, client_id.as_str())?;
        let view = key.view(&owner.email, now);
        notify(conn, Event::Created, (&key.id, &view), issuer, actor, now)?;
        // Already inside the warning window: warned right after, not at the next sweep.
        if key
            .expires_at
            .is_some_and(|at| from_db(at) - expiry_warning.as_chrono() <= now)
        {
            notify(
                conn,
                Event::Expiring,
                (&key.id, &view),
                issuer,
                audit::SYSTEM,
                now,
            )?;
        }
        Ok(view)
    })?;
    Ok(IssuedKey { key, secret })
}

/// Refuses a key past `KEYGATE_MAX_KEYS_PER_USER`: active keys are those
/// neither revoked nor expired. On PostgreSQL the owner's row is locked
/// first, so two creations at once cannot both pass the count (SQLite's
/// `BEGIN IMMEDIATE` already lets one writer in at a time).
fn refuse_past_the_limit(
    conn: &mut DbConnection,
    owner: &User,
    max: u32,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    if let DbConnection::Pg(pg) = conn {
        users::table
            .find(&owner.id)
            .select(users::id)
            .for_update()
            .first::<String>(pg)?;
    }
    let now = now.naive_utc();
    let active: i64 = api_keys::table
        .filter(api_keys::owner_id.eq(&owner.id))
        .filter(api_keys::revoked_at.is_null())
        .filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now)),
        )
        .count()
        .get_result(conn)?;
    if active < i64::from(max) {
        return Ok(());
    }
    let keys = if max == 1 { "key" } else { "keys" };
    Err(AppError::conflict(
        "key_limit_reached",
        format!(
            "{} already holds {active} active {keys}, the most one person may hold \
             (KEYGATE_MAX_KEYS_PER_USER={max}): revoke one first",
            owner.email
        ),
    ))
}

#[derive(Debug, thiserror::Error)]
#[error("hashing the secret failed: {0}")]
struct HashError(argon2::password_hash::Error);

fn key_not_found(client_id: &str) -> AppError {
    AppError::not_found(
        "key_not_found",
        format!("no key with client ID {client_id}"),
    )
}

pub fn find_key(conn: &mut DbConnection, client_id: &str) -> Result<ApiKey, AppError> {
    api_keys::table
        .filter(api_keys::client_id.eq(client_id))
        .select(ApiKey::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| key_not_found(client_id))
}

/// A key with its owner's email.
pub fn find_key_view(
    conn: &mut DbConnection,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<(ApiKey, KeyView), AppError> {
    let (key, email): (ApiKey, String) = api_keys::table
        .inner_join(users::table)
        .filter(api_keys::client_id.eq(client_id))
        .select((ApiKey::as_select(), users::email))
        .first(conn)
        .optional()?
        .ok_or_else(|| key_not_found(client_id))?;
    let view = key.view(&email, now);
    Ok((key, view))
}

/// Newest first; all keys, or one owner's.
pub fn list_api_keys(
    conn: &mut DbConnection,
    owner_email: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<KeyView>, AppError> {
    let mut query = api_keys::table
        .inner_join(users::table)
        .select((ApiKey::as_select(), users::email))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .into_boxed();
    if let Some(email) = owner_email {
        let owner = crate::users::find_user_by_email(conn, email)?;
        query = query.filter(api_keys::owner_id.eq(owner.id));
    }
    let rows: Vec<(ApiKey, String)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(key, email)| key.view(&email, now))
        .collect())
}

/// Issues a new secret; the old one keeps working for `grace` (none: at once
/// stops) and not a second longer. The client ID stays.
pub fn rotate_api_key(
    conn: &mut DbConnection,
    client_id: &str,
    grace: Option<HumanDuration>,
    tagger: &TokenHasher,
    (issuer, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<IssuedKey, AppError> {
    let secret = PlainSecret::generate();
    let hash = secret
        .hash()
        .map_err(|e| AppError::internal(HashError(e)))?;
    let lookup = secret.lookup_tag(tagger);
    let key = write_transaction(conn, |conn| {
        let (key, _) = find_key_view(conn, client_id, now)?;
        refuse_unless_active(&key, now)?;
        let previous_until = check_grace(&key, grace, now)?;
        diesel::update(api_keys::table.find(&key.id))
            .set((
                api_keys::secret_hash.eq(hash.as_str()),
                api_keys::previous_secret_hash.eq(previous_until.map(|_| key.secret_hash.as_str())),
                api_keys::previous_secret_expires_at.eq(previous_until),
                api_keys::secret_lookup.eq(&lookup),
                api_keys::previous_secret_lookup
                    .eq(previous_until.and(key.secret_lookup.as_deref())),
                api_keys::rotated_at.eq(now.naive_utc()),
                api_keys::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::KeyRotated,
                target: client_id,
                source_addr: None,
                details: json!({ "previous_secret_expires_at": previous_until.map(|t| rfc3339(from_db(t))) }),
            },
        )?;
        let (key, view) = find_key_view(conn, client_id, now)?;
        notify(conn, Event::Rotated, (&key.id, &view), issuer, actor, now)?;
        Ok::<_, AppError>(view)
    })?;
    Ok(IssuedKey { key, secret })
}

/// An issuance limit as stored (the column is a 32-bit integer; limits are
/// checked to stay far below its range).
fn stored_limit(limit: Option<u32>) -> Option<i32> {
    limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// Changes a key's usage envelope: each part the change gives is replaced.
/// The next token request on every process obeys it (the credential is read
/// afresh each time). Audited with the envelope before and after.
pub fn set_envelope(
    conn: &mut DbConnection,
    client_id: &str,
    change: &EnvelopeChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    if change.is_empty() {
        return Err(AppError::invalid(
            "nothing_to_change",
            "give the allowed networks, the issuance limit or both",
        ));
    }
    write_transaction(conn, |conn| {
        let (key, before) = find_key_view(conn, client_id, now)?;
        refuse_unless_active(&key, now)?;
        let networks = match &change.allowed_networks {
            Some(networks) => networks.clone(),
            None => key.allowed_networks.clone().unwrap_or_default(),
        };
        let limit = match change.max_tokens_per_minute {
            Some(limit) => limit,
            None => before.max_tokens_per_minute,
        };
        diesel::update(api_keys::table.find(&key.id))
            .set((
                api_keys::allowed_networks.eq(networks.to_stored()),
                api_keys::max_tokens_per_minute.eq(stored_limit(limit)),
                api_keys::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::KeyUpdated,
                target: client_id,
                source_addr: None,
                details: json!({
                    "allowed_networks": { "from": before.allowed_networks, "to": networks.to_vec() },
                    "max_tokens_per_minute": { "from": before.max_tokens_per_minute, "to": limit },
                }),
            },
        )?;
        let (_, view) = find_key_view(conn, client_id, now)?;
        Ok(view)
    })
}

/// The longest a rotated-out secret keeps working.
pub const MAX_GRACE_DAYS: i64 = 30;

/// When the old secret stops working: at most [`MAX_GRACE_DAYS`] from now and
/// never after the key itself expires, so a rotation cannot stretch a leaked
/// secret's life.
fn check_grace(
    key: &ApiKey,
    grace: Option<HumanDuration>,
    now: DateTime<Utc>,
) -> Result<Option<NaiveDateTime>, AppError> {
    let Some(grace) = grace else {
        return Ok(None);
    };
    if grace.as_chrono() > chrono::Duration::days(MAX_GRACE_DAYS) {
        return Err(AppError::invalid(
            "grace_too_long",
            format!("grace {grace} is longer than the maximum of {MAX_GRACE_DAYS} days"),
        ));
    }
    let until = (now + grace.as_chrono()).naive_utc();
    if let Some(expires_at) = key.expires_at.filter(|at| until > *at) {
        return Err(AppError::invalid(
            "grace_too_long",
            format!(
                "grace {grace} would outlive the key, which expires at {}: \
                 the old secret may work at most until then",
                rfc3339(from_db(expires_at))
            ),
        ));
    }
    Ok(Some(until))
}

fn refuse_unless_active(key: &ApiKey, now: DateTime<Utc>) -> Result<(), AppError> {
    match key.status(now) {
        super::KeyStatus::Active => Ok(()),
        super::KeyStatus::Revoked => Err(AppError::conflict(
            "key_revoked",
            format!(
                "key {} is revoked; revocation cannot be undone",
                key.client_id
            ),
        )),
        super::KeyStatus::Expired => Err(AppError::conflict(
            "key_expired",
            format!("key {} has expired; create a new key", key.client_id),
        )),
    }
}

/// Revokes for good: the key stops working at once, grace secrets included.
pub fn revoke_api_key(
    conn: &mut DbConnection,
    client_id: &str,
    reason: Option<&str>,
    (issuer, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    revoke_and_tell(
        conn,
        client_id,
        reason,
        (Event::Revoked, None),
        (issuer, actor),
        now,
    )
}

/// Revokes a key whose secret was reported leaked (`crate::exposure`): the
/// same revocation, reason `exposed: <source>`, and the owner's email is
/// the "exposed" one (what was found, where, what to do) instead of the
/// plain "revoked". `reporter` is the address the report came from, for the
/// audit event.
pub fn revoke_exposed_api_key(
    conn: &mut DbConnection,
    client_id: &str,
    (source, reporter): (&str, Option<&str>),
    (issuer, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    let reason = format!("exposed: {source}");
    revoke_and_tell(
        conn,
        client_id,
        Some(&reason),
        (Event::Exposed, reporter),
        (issuer, actor),
        now,
    )
}

fn revoke_and_tell(
    conn: &mut DbConnection,
    client_id: &str,
    reason: Option<&str>,
    (event, source_addr): (Event, Option<&str>),
    (issuer, actor): (&str, &str),
    now: DateTime<Utc>,
) -> Result<KeyView, AppError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.len() > MAX_DESCRIPTION_LEN) {
        return Err(AppError::invalid(
            "invalid_reason",
            "the reason is too long",
        ));
    }
    if let Some(reason) = reason {
        text::refuse_control_characters("invalid_reason", "reason", reason)?;
    }
    write_transaction(conn, |conn| {
        let (key, _) = find_key_view(conn, client_id, now)?;
        if key.revoked_at.is_some() {
            return Err(AppError::conflict(
                "key_revoked",
                format!("key {client_id} is already revoked"),
            ));
        }
        diesel::update(api_keys::table.find(&key.id))
            .set((
                api_keys::revoked_at.eq(now.naive_utc()),
                api_keys::revoked_by.eq(actor),
                api_keys::revoked_reason.eq(reason),
                api_keys::previous_secret_hash.eq(None::<String>),
                api_keys::previous_secret_expires_at.eq(None::<NaiveDateTime>),
                api_keys::previous_secret_lookup.eq(None::<String>),
                api_keys::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::KeyRevoked,
                target: client_id,
                source_addr,
                details: json!({ "reason": reason }),
            },
        )?;
        let (key, view) = find_key_view(conn, client_id, now)?;
        notify(conn, event, (&key.id, &view), issuer, actor, now)?;
        Ok(view)
    })
}

/// Everything an OAuth endpoint needs to authenticate a client and decide
/// its token. A request uses one read afresh, or one remembered with the
/// credential epoch it was read at while that epoch is still the
/// database's (`client_auth::verified`), so a revocation, a disabled owner
/// or a narrowed role bites on the very next one.
#[derive(Debug, Clone)]
pub struct Credential {
    pub key_id: String,
    pub client_id: ClientId,
    /// The key's audiences: as stored, or for a key stored without any (one
    /// created before audiences followed from scopes) the APIs that define
    /// its scopes.
    pub audiences: Audiences,
    /// The scopes each of those audiences defines.
    pub audience_scopes: ApiScopes,
    pub secret_hash: SecretHash,
    pub previous_secret_hash: Option<SecretHash>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub last_used_from: Option<String>,
    pub last_used_user_agent: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
    pub owner_disabled: bool,
    pub role: Role,
    /// The key's scopes that its owner's role still grants.
    pub effective_scopes: ScopeSet,
    /// Where the key may be used from (empty: anywhere).
    pub allowed_networks: AllowedNetworks,
    /// Most tokens per minute (`None`: no limit).
    pub max_tokens_per_minute: Option<u32>,
}

/// Where a token request came from, as [`touch_last_used`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseSite {
    /// The client's address (behind trusted proxies, the forwarded one).
    pub from: String,
    /// Its `User-Agent`, cleaned ([`UseSite::clean_user_agent`]).
    pub user_agent: Option<String>,
}

/// Longest `User-Agent` kept; the rest is cut.
const MAX_USER_AGENT_LEN: usize = 200;

impl UseSite {
    /// A `User-Agent` fit to store and show: control characters dropped,
    /// at most [`MAX_USER_AGENT_LEN`] bytes, redacted when it could hold a
    /// secret; `None` when nothing is left.
    pub fn clean_user_agent(raw: &[u8]) -> Option<String> {
        let text = String::from_utf8_lossy(raw);
        let mut cleaned: String = text.chars().filter(|c| !c.is_control()).collect();
        if cleaned.len() > MAX_USER_AGENT_LEN {
            let mut end = MAX_USER_AGENT_LEN;
            while !cleaned.is_char_boundary(end) {
                end -= 1;
            }
            cleaned.truncate(end);
        }
        let cleaned = cleaned.trim();
        (!cleaned.is_empty()).then(|| text::redact_secret(cleaned).into_owned())
    }
}

/// Why a key with a right secret may still not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    Expired,
    OwnerDisabled,
    /// The request came from outside the key's allowed networks.
    NetworkNotAllowed,
}

impl Refusal {
    /// The name in the audit log and the debug log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::OwnerDisabled => "owner_disabled",
            Self::NetworkNotAllowed => "network_not_allowed",
        }
    }
}

/// The one join a credential is read with: the key, its owner's state and
/// role, each column already in its type.
#[derive(Queryable, Selectable)]
#[diesel(table_name = api_keys)]
struct CredentialRow {
    id: String,
    client_id: ClientId,
    scopes: ScopeSet,
    audiences: Audiences,
    secret_hash: SecretHash,
    previous_secret_hash: Option<SecretHash>,
    previous_secret_expires_at: Option<NaiveDateTime>,
    expires_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
    last_used_from: Option<String>,
    last_used_user_agent: Option<String>,
    revoked_at: Option<NaiveDateTime>,
    allowed_networks: Option<AllowedNetworks>,
    max_tokens_per_minute: Option<i32>,
    #[diesel(select_expression = users::disabled)]
    owner_disabled: bool,
    #[diesel(embed)]
    role: Role,
}

impl Credential {
    /// A usable credential of no scopes with `phc` as its current hash.
    #[cfg(test)]
    pub fn for_tests(phc: &str) -> Self {
        let epoch = chrono::DateTime::UNIX_EPOCH.naive_utc();
        Self {
            key_id: "key".to_owned(),
            client_id: ClientId::from_stored("kg_test".to_owned()),
            audiences: Audiences::default(),
            audience_scopes: ApiScopes::default(),
            secret_hash: SecretHash::from_stored(phc.to_owned()),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            expires_at: None,
            last_used_at: None,
            last_used_from: None,
            last_used_user_agent: None,
            revoked_at: None,
            owner_disabled: false,
            role: Role {
                name: "member".to_owned(),
                scopes: String::new(),
                grants_all: false,
                grants_api_scopes: true,
                builtin: true,
                created_at: epoch,
                updated_at: epoch,
            },
            effective_scopes: ScopeSet::default(),
            allowed_networks: AllowedNetworks::default(),
            max_tokens_per_minute: None,
        }
    }

    /// The previous secret's hash while the rotation grace period runs.
    pub fn previous_hash(&self, now: DateTime<Utc>) -> Option<&SecretHash> {
        match (&self.previous_secret_hash, self.previous_secret_expires_at) {
            (Some(hash), Some(until)) if from_db(until) > now => Some(hash),
            _ => None,
        }
    }

    /// Why the key may not be used right now, if it may not (wherever the
    /// request comes from: see [`Credential::refusal_from`]).
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<Refusal> {
        if self.revoked_at.is_some() {
            Some(Refusal::Revoked)
        } else if self.expires_at.is_some_and(|t| from_db(t) <= now) {
            Some(Refusal::Expired)
        } else if self.owner_disabled {
            Some(Refusal::OwnerDisabled)
        } else {
            None
        }
    }

    /// [`Credential::refusal`], or for a request from `addr` outside the
    /// key's allowed networks, [`Refusal::NetworkNotAllowed`].
    pub fn refusal_from(
        &self,
        addr: Option<std::net::IpAddr>,
        now: DateTime<Utc>,
    ) -> Option<Refusal> {
        self.refusal(now)
            .or_else(|| (!self.allowed_networks.allows(addr)).then_some(Refusal::NetworkNotAllowed))
    }

    /// The last use recorded: when, and from where.
    pub fn last_use(&self) -> Option<LastUse> {
        self.last_used_at.map(|at| LastUse {
            at,
            from: self.last_used_from.clone(),
        })
    }
}

/// Loads a key's credential with its owner's state, effective scopes and its
/// audiences' scopes: one join, then one read of every registered API.
///
/// Both reads run whether or not the client ID exists, and the second is
/// the same statement returning the same rows for every key, whatever its
/// role or audiences. Reading only what a found key needs (nothing for an
/// unknown ID, every API for a role that grants every API scope) made an
/// unknown ID measurably faster than a known one once many scopes were
/// registered (0.57 against 1.41 ms with 5,000), telling a prober which
/// client IDs exist before any secret is checked; the argon2 decoy in
/// `client_auth` evens out the other half. The price is reading the API
/// registry on every token request, which stays small (one row per API).
pub fn find_credential(
    conn: &mut DbConnection,
    client_id: &ClientId,
) -> QueryResult<Option<Credential>> {
    let row: Option<CredentialRow> = api_keys::table
        .inner_join(users::table.inner_join(roles::table))
        .filter(api_keys::client_id.eq(client_id.as_str()))
        .select(CredentialRow::as_select())
        .first(conn)
        .optional()?;
    let apis = resource_servers::load_api_scopes(conn, None)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let derives_audiences = row.audiences.is_empty() && !row.scopes.iter().all(scope::is_builtin);
    let stored: Vec<Audience> = row.audiences.iter().cloned().collect();
    let grantable = row.role.grantable(|| Ok(apis.all()))?;
    let effective_scopes = row.scopes.filter(|s| grantable.allows(s));
    let audiences = if derives_audiences {
        apis.defining_any(&row.scopes)
    } else {
        stored
    };
    Ok(Some(Credential {
        key_id: row.id,
        client_id: row.client_id,
        audience_scopes: apis.restricted_to(&audiences),
        audiences: audiences.into_iter().collect(),
        secret_hash: row.secret_hash,
        previous_secret_hash: row.previous_secret_hash,
        previous_secret_expires_at: row.previous_secret_expires_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        last_used_from: row.last_used_from,
        last_used_user_agent: row.last_used_user_agent,
        revoked_at: row.revoked_at,
        owner_disabled: row.owner_disabled,
        role: row.role,
        effective_scopes,
        allowed_networks: row.allowed_networks.unwrap_or_default(),
        max_tokens_per_minute: row
            .max_tokens_per_minute
            .and_then(|n| u32::try_from(n).ok()),
    }))
}

/// A key found by a lookup tag: client ID, current hash and tag, previous
/// hash and until when it works.
type LookupRow = (
    ClientId,
    SecretHash,
    Option<String>,
    Option<SecretHash>,
    Option<NaiveDateTime>,
);

/// The live key (neither revoked nor expired) a secret's lookup tag
/// ([`PlainSecret::lookup_tag`]) points to, with the one hash the secret
/// must verify against: the current secret's, or the previous one's while
/// its grace runs. A tag of a previous secret past its grace finds nothing.
pub fn find_by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    by_secret_lookup(conn, tag, Some(now))
}

/// Any key, live or not, a secret's lookup tag points to, with the hash the
/// secret must verify against: whether a reported string is a secret this
/// keygate issued (GitHub's `true_positive`), revoked, expired or rotated
/// away since. A previous secret's hash is kept only while its key is not
/// revoked, so such a secret of a key revoked since finds nothing.
pub fn find_any_by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    by_secret_lookup(conn, tag, None)
}

/// The key `tag` points to and the hash to verify against: among the keys
/// live at `live_at` (a previous secret only within its grace), or among
/// all keys without it.
fn by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
    live_at: Option<DateTime<Utc>>,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    let mut query = api_keys::table
        .filter(
            api_keys::secret_lookup
                .eq(tag)
                .or(api_keys::previous_secret_lookup.eq(tag)),
        )
        .select((
            api_keys::client_id,
            api_keys::secret_hash,
            api_keys::secret_lookup,
            api_keys::previous_secret_hash,
            api_keys::previous_secret_expires_at,
        ))
        .limit(2)
        .into_boxed();
    if let Some(now) = live_at {
        query = query.filter(api_keys::revoked_at.is_null()).filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now.naive_utc())),
        );
    }
    let rows: Vec<LookupRow> = query.load(conn)?;
    let in_grace = |until: Option<NaiveDateTime>| match (live_at, until) {
        (None, _) => true,
        (Some(now), Some(until)) => from_db(until) > now,
        (Some(_), None) => false,
    };
    Ok(rows
        .into_iter()
        .find_map(|(client_id, current, current_tag, previous, until)| {
            if current_tag.as_deref() == Some(tag) {
                Some((client_id, current))
            } else {
                previous
                    .filter(|_| in_grace(until))
                    .map(|hash| (client_id, hash))
            }
        }))
}

/// Queues `event`'s email to the key's owner, in the caller's transaction;
/// `issuer` tells the owner which keygate it comes from.
pub(super) fn notify(
    conn: &mut DbConnection,
    event: Event,
    (key_id, view): (&str, &KeyView),
    issuer: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let about = mail::outbox::AboutKey {
        id: key_id,
        owner: &view.owner,
        created_by: &view.created_by,
        view,
    };
    mail::enqueue_key_event(conn, event, about, issuer, actor, now)
}

/// Records that the key was used now, from where and by what.
pub fn touch_last_used(
    conn: &mut DbConnection,
    key_id: &str,
    site: &UseSite,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set((
            api_keys::last_used_at.eq(now.naive_utc()),
            api_keys::last_used_from.eq(&site.from),
            api_keys::last_used_user_agent.eq(site.user_agent.as_deref()),
        ))
        .execute(conn)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;
    use crate::db::DatabaseUrl;

    /// The SQL (without bind values) of every statement the connection runs.
    fn record_statements(conn: &mut DbConnection) -> Arc<Mutex<Vec<String>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let recorder = move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::StartQuery { query, .. } = event {
                let text = query.to_string();
                let sql = text
                    .split(" -- binds")
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                sink.lock().unwrap().push(sql);
            }
        };
        conn.set_instrumentation(Box::new(recorder) as Box<dyn Instrumentation>);
        seen
    }

    #[test]
    fn user_agents_are_cleaned_cut_and_never_hold_a_secret() {
        assert_eq!(
            UseSite::clean_user_agent(b"curl/8.5.0").as_deref(),
            Some("curl/8.5.0")
        );
        assert_eq!(
            UseSite::clean_user_agent(b"  bad\x1b[31m agent\x07 ").as_deref(),
            Some("bad[31m agent")
        );
        assert_eq!(UseSite::clean_user_agent(b" \t ").as_deref(), None);
        let long = "é".repeat(150);
        let cut = UseSite::clean_user_agent(long.as_bytes()).unwrap();
        assert_eq!(cut.len(), MAX_USER_AGENT_LEN);
        assert!(cut.chars().all(|c| c == 'é'));
        let leaky = format!(
            "deploy-bot (secret {}{})",
            crate::text::SECRET_PREFIX,
            "a".repeat(49)
        );
        assert_eq!(
            UseSite::clean_user_agent(leaky.as_bytes()).as_deref(),
            Some(crate::text::REDACTED_SECRET)
        );
        assert_eq!(
            UseSite::clean_user_agent(b"\xff\xfeok").as_deref(),
            Some("\u{fffd}\u{fffd}ok")
        );
    }

    /// An unknown client ID costs the same statements as a known key whose
    /// owner's role grants every API scope (the built-in `member`): the
    /// lookup does not tell which IDs exist by the work it does.
    #[test]
    fn an_unknown_client_id_runs_the_same_statements_as_a_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let url = DatabaseUrl::Sqlite(dir.path().join("keygate.db"));
        let mut conn = crate::db::connect_one(&url).unwrap();
        crate::db::migrate(&mut conn).unwrap();
        let now = Utc::now();
        crate::users::create_user(
            &mut conn,
            crate::users::NewUserInput {
                email: "alice@example.com",
                name: "Alice",
                role: "member",
                password_hash: None,
            },
            audit::COMMAND_LINE,
            now,
        )
        .unwrap();
        for (api, scopes) in [
            ("https://a.example.com", "read write"),
            ("https://b.example.com", "bill"),
        ] {
            resource_servers::create_api(
                &mut conn,
                &Audience::parse(api).unwrap(),
                "API",
                &ScopeSet::from_stored(scopes),
                audit::COMMAND_LINE,
                now,
            )
            .unwrap();
        }
        let issued = create_api_key(
            &mut conn,
            NewKeyRequest {
                owner_email: "alice@example.com",
                name: "ci",
                description: "",
                scopes: ScopeSet::from_stored("read"),
                audiences: Vec::new(),
                expires_in: None,
                envelope: Envelope::default(),
            },
            KeyLimits {
                max_lifetime: None,
                expiry_warning: "7d".parse().unwrap(),
                max_keys_per_user: None,
            },
            &crate::signing::MasterKey::generate().token_hasher(),
            ("http://127.0.0.1:8080", audit::COMMAND_LINE),
            now,
        )
        .unwrap();
        let known = ClientId::parse(&issued.key.client_id).unwrap();
        let unknown = ClientId::generate();

        let seen = record_statements(&mut conn);
        assert!(find_credential(&mut conn, &known).unwrap().is_some());
        let for_known = std::mem::take(&mut *seen.lock().unwrap());
        assert!(find_credential(&mut conn, &unknown).unwrap().is_none());
        let for_unknown = std::mem::take(&mut *seen.lock().unwrap());
        assert_eq!(for_known.len(), 2, "{for_known:?}");
        assert_eq!(for_unknown, for_known);
    }
}
