//! The rules a key obeys, whoever asks: what a request may hold, what its
//! owner's role may grant, how many keys one person may hold, how long a
//! rotated-out secret may keep working. The service ([`super::service`])
//! applies them inside its transactions.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::envelope::Envelope;
use super::error::{KeyError, TextField, refuse_control_characters};
use super::limits::{MAX_DESCRIPTION_LEN, MAX_GRACE_DAYS, MAX_NAME_LEN};
use super::model::{ApiKey, KeyStatus};
use super::owner::{Holder, KeyOwner};
use crate::db::DbConnection;
use crate::db::schema::{api_keys, teams, users};
use crate::duration::HumanDuration;
use crate::resource_servers;
use crate::scope::{self, Audience, ScopeSet, audiences_to_stored};
use crate::time::from_db;

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
    /// The person or team the key is for.
    pub owner: KeyOwner,
    pub name: &'a str,
    pub description: &'a str,
    pub scopes: ScopeSet,
    pub audiences: Vec<Audience>,
    pub expires_in: Option<HumanDuration>,
    /// Allowed networks and issuance limit (empty: anywhere, no limit).
    pub envelope: Envelope,
    /// How its client will authenticate.
    pub credential: NewCredential,
}

/// How a new key's client will authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewCredential {
    /// A secret, generated now and shown once.
    Secret,
    /// `private_key_jwt` with these public keys: a JWKS, already checked,
    /// as it is stored.
    PublicKeys(String),
    /// A federation's key: no secret and no public key of its own.
    Federation,
}

impl NewCredential {
    pub fn auth_method(&self) -> super::model::AuthMethod {
        use super::model::AuthMethod;
        match self {
            Self::Secret => AuthMethod::ClientSecret,
            Self::PublicKeys(_) => AuthMethod::PrivateKeyJwt,
            Self::Federation => AuthMethod::Federation,
        }
    }
}

/// Checks every rule that does not need the database; returns when the key
/// expires.
pub(super) fn check_request(
    request: &NewKeyRequest<'_>,
    max_lifetime: Option<HumanDuration>,
    now: DateTime<Utc>,
) -> Result<Option<NaiveDateTime>, KeyError> {
    let name = request.name.trim();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(KeyError::NameLength);
    }
    if request.description.len() > MAX_DESCRIPTION_LEN {
        return Err(KeyError::DescriptionLength);
    }
    refuse_control_characters(TextField::Name, request.name)?;
    refuse_control_characters(TextField::Description, request.description)?;
    let lifetime = match (request.expires_in, max_lifetime) {
        (Some(asked), Some(max)) if asked > max => {
            return Err(KeyError::ExpiryTooLong { asked, max });
        }
        (Some(asked), _) => Some(asked),
        (None, max) => max,
    };
    Ok(lifetime.map(|d| (now + d.as_chrono()).naive_utc()))
}

/// Whether a key holding `scopes` needs an admin's approval when someone
/// who is not an admin creates it (`super::approval`).
pub(super) fn needs_approval(conn: &mut DbConnection, scopes: &ScopeSet) -> QueryResult<bool> {
    let marked = resource_servers::all_approval_scopes(conn)?;
    Ok(scopes.iter().any(|s| marked.contains(s)))
}

/// A revocation's reason: trimmed, `None` when empty, refused when too long
/// or holding control characters.
pub(super) fn check_reason(reason: Option<&str>) -> Result<Option<&str>, KeyError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        if reason.len() > MAX_DESCRIPTION_LEN {
            return Err(KeyError::ReasonLength);
        }
        refuse_control_characters(TextField::Reason, reason)?;
    }
    Ok(reason)
}

/// Checks the key's scopes against what exists and what the owner's role may
/// grant, and its audiences against the registered APIs; returns the
/// audiences to store. Without audiences given, they follow from the scopes
/// (the APIs that define them), so the key's tokens name an API that accepts
/// them. With audiences given, every API scope must belong to one of them:
/// a grant's scopes belong to its API, as in Auth0 and Keycloak.
pub(super) fn check_grants(
    conn: &mut DbConnection,
    owner: &Holder,
    request: &NewKeyRequest<'_>,
) -> Result<Vec<Audience>, KeyError> {
    let apis = resource_servers::load_api_scopes(conn, None)?;
    let registered = apis.all();
    let grantable = owner.role.grantable(|| Ok(registered.clone()))?;
    for scope in request.scopes.iter() {
        if !scope::is_builtin(scope) && !registered.contains(scope) {
            return Err(KeyError::UnknownScope(scope.to_owned()));
        }
        if !grantable.allows(scope) {
            return Err(KeyError::ScopeNotGrantable {
                scope: scope.to_owned(),
                role: owner.role.name.clone(),
                owner: owner.owner.to_string(),
            });
        }
    }
    for audience in &request.audiences {
        if apis.of(audience.as_str()).is_none() {
            return Err(KeyError::UnknownAudience(audience.clone()));
        }
    }
    if request.audiences.is_empty() {
        return Ok(apis.defining_any(&request.scopes));
    }
    if let Some(scope) = apis.first_outside(&request.scopes, &request.audiences) {
        return Err(KeyError::ScopeOutsideAudience {
            scope: scope.to_owned(),
            given: audiences_to_stored(&request.audiences).replace(' ', ", "),
        });
    }
    Ok(request.audiences.clone())
}

/// Refuses a key past `KEYGATE_MAX_KEYS_PER_USER` (for a team, the same
/// number): active keys are those neither revoked nor expired, pending ones
/// included. On PostgreSQL the owner's row is locked first, so two
/// creations at once cannot both pass the count (SQLite's `BEGIN
/// IMMEDIATE` already lets one writer in at a time).
pub(super) fn refuse_past_the_limit(
    conn: &mut DbConnection,
    owner: &Holder,
    max: u32,
    now: DateTime<Utc>,
) -> Result<(), KeyError> {
    let (person, team) = owner.columns();
    if let DbConnection::Pg(pg) = conn {
        match team {
            None => users::table
                .find(&owner.id)
                .select(users::id)
                .for_update()
                .first::<String>(pg)?,
            Some(_) => teams::table
                .find(&owner.id)
                .select(teams::id)
                .for_update()
                .first::<String>(pg)?,
        };
    }
    let now = now.naive_utc();
    let mut query = api_keys::table
        .filter(api_keys::revoked_at.is_null())
        .into_boxed();
    query = match (person, team) {
        (_, Some(team)) => query.filter(api_keys::team_id.eq(team)),
        (person, None) => query.filter(api_keys::owner_id.eq(person)),
    };
    let active: i64 = query
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
    Err(KeyError::LimitReached {
        owner: owner.owner.to_string(),
        active,
        max,
    })
}

/// When the old secret stops working: at most [`MAX_GRACE_DAYS`] from now and
/// never after the key itself expires, so a rotation cannot stretch a leaked
/// secret's life.
pub(super) fn check_grace(
    key: &ApiKey,
    grace: Option<HumanDuration>,
    now: DateTime<Utc>,
) -> Result<Option<NaiveDateTime>, KeyError> {
    let Some(grace) = grace else {
        return Ok(None);
    };
    if grace.as_chrono() > chrono::Duration::days(MAX_GRACE_DAYS) {
        return Err(KeyError::GraceTooLong(grace));
    }
    let until = (now + grace.as_chrono()).naive_utc();
    if let Some(expires_at) = key.expires_at.filter(|at| until > *at) {
        return Err(KeyError::GraceOutlivesKey {
            grace,
            expires_at: from_db(expires_at),
        });
    }
    Ok(Some(until))
}

/// A grace period as a person or a client writes it (`1h`, `7d`); `0`
/// for none.
pub fn parse_grace(text: &str) -> Result<Option<HumanDuration>, KeyError> {
    HumanDuration::parse_or_zero(text)
        .map_err(|e| KeyError::InvalidGrace(format!("grace {text:?}: {e}")))
}

/// Refuses a change to a key that is revoked or expired (a pending key may
/// be changed: it is alive, only not yet approved).
pub(super) fn refuse_unless_active(key: &ApiKey, now: DateTime<Utc>) -> Result<(), KeyError> {
    match key.status(now) {
        KeyStatus::Active | KeyStatus::Pending => Ok(()),
        KeyStatus::Revoked => Err(KeyError::Revoked(key.client_id.to_string())),
        KeyStatus::Expired => Err(KeyError::Expired(key.client_id.to_string())),
    }
}

/// An issuance limit as stored (the column is a 32-bit integer; limits are
/// checked to stay far below its range).
pub(super) fn stored_limit(limit: Option<u32>) -> Option<i32> {
    limit.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}
