//! The keys service: every way a key is listed, read, created, rotated,
//! changed and revoked, for whoever asks (the console, the management API,
//! the command line, a report of an exposed secret). Each operation takes
//! the [`Caller`] and `now`, decides what the caller may see inside the
//! transaction that acts, writes the key, its audit event and its email
//! together or not at all, and returns the key as shown ([`Key`]).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;

use super::caller::Caller;
use super::envelope::EnvelopeChange;
use super::error::KeyError;
use super::model::{ApiKey, IssuedKey, Key, NewApiKey};
use super::rules::{self, KeyLimits, NewKeyRequest};
use super::secret::{ClientId, PlainSecret, SecretHash};
use crate::audit::{self, Action};
use crate::db::schema::{api_keys, users};
use crate::db::{DbConnection, write_transaction};
use crate::duration::HumanDuration;
use crate::mail::outbox::{AboutKey, QueueError};
use crate::mail::{self, Event};
use crate::scope::{Audience, audiences_to_stored};
use crate::signing::TokenHasher;
use crate::time::{from_db, rfc3339};

/// The keys of one keygate: the issuer its emails name and the limits every
/// new key obeys.
#[derive(Debug, Clone)]
pub struct Service {
    issuer: String,
    limits: KeyLimits,
}

/// A report that a key's secret was found where it should not be.
#[derive(Debug, Clone, Copy)]
pub struct Exposure<'a> {
    /// Where it was found, as the report says (`public gist`, a file and line).
    pub source: &'a str,
    /// The address the report came from (none from the command line).
    pub reported_from: Option<&'a str>,
}

impl Service {
    pub fn new(issuer: impl Into<String>, limits: KeyLimits) -> Self {
        Self {
            issuer: issuer.into(),
            limits,
        }
    }

    /// Newest first: every key the caller may see, or those of `owner`
    /// (another owner than a caller who sees only their own is refused).
    pub fn list(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        owner: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Key>, KeyError> {
        let owner = match (owner, caller.only_owner()) {
            (Some(asked), Some(own)) if !asked.eq_ignore_ascii_case(own) => {
                return Err(KeyError::ForeignOwner);
            }
            (asked, own) => own.or(asked),
        };
        list_api_keys(conn, owner, now)
    }

    /// One key, if the caller may see it; otherwise the same "not found" as
    /// for no key.
    pub fn get(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        let (row, owner) = visible_row(conn, caller, client_id)?;
        Ok(Key::new(row, owner, now))
    }

    /// Creates a key and returns it with its secret, shown this once. The
    /// key, its audit event and its email are written together or not at all.
    pub fn create(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        request: NewKeyRequest<'_>,
        tagger: &TokenHasher,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, KeyError> {
        if !caller.may_manage_keys_of(request.owner_email) {
            return Err(KeyError::ForeignOwner);
        }
        let expires_at = rules::check_request(&request, self.limits.max_lifetime, now)?;
        let client_id = ClientId::generate();
        let (secret, hash, lookup) = new_secret(tagger)?;
        let key = write_transaction(conn, |conn| {
            let owner = rules::find_owner(conn, request.owner_email)?;
            rules::check_owner(&owner)?;
            if let Some(max) = self.limits.max_keys_per_user {
                rules::refuse_past_the_limit(conn, &owner, max, now)?;
            }
            let audiences = rules::check_grants(conn, &owner, &request)?;
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
                created_by: caller.actor(),
                created_at: now.naive_utc(),
                updated_at: now.naive_utc(),
                expires_at,
                allowed_networks: request.envelope.allowed_networks.to_stored(),
                max_tokens_per_minute: rules::stored_limit(request.envelope.max_tokens_per_minute),
            };
            let row: ApiKey = diesel::insert_into(api_keys::table)
                .values(&new)
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyCreated, client_id.as_str()),
                None,
                json!({
                        "name": new.name,
                        "owner": owner.email,
                        "scopes": request.scopes.to_vec(),
                        "audiences": audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
                        "expires_at": expires_at.map(|t| rfc3339(from_db(t))),
                        "allowed_networks": request.envelope.allowed_networks.to_vec(),
                    "max_tokens_per_minute": request.envelope.max_tokens_per_minute,
                }),
                now,
            )?;
            let key = Key::new(row, owner.email, now);
            self.notify(conn, Event::Created, &key, caller, now)?;
            // Already inside the warning window: warned right after, not at the next sweep.
            let warning = self.limits.expiry_warning.as_chrono();
            if key.expires_at.is_some_and(|at| at - warning <= now) {
                self.notify(conn, Event::Expiring, &key, &Caller::Keygate, now)?;
            }
            Ok::<_, KeyError>(key)
        })?;
        Ok(IssuedKey::new(key, secret))
    }

    /// Issues a new secret; the old one keeps working for `grace` (none: it
    /// stops at once) and not a second longer. The client ID stays.
    pub fn rotate(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        grace: Option<HumanDuration>,
        tagger: &TokenHasher,
        now: DateTime<Utc>,
    ) -> Result<IssuedKey, KeyError> {
        let (secret, hash, lookup) = new_secret(tagger)?;
        let key = write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id)?;
            rules::refuse_unless_active(&row, now)?;
            let previous_until = rules::check_grace(&row, grace, now)?;
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::secret_hash.eq(hash.as_str()),
                    api_keys::previous_secret_hash
                        .eq(previous_until.map(|_| row.secret_hash.as_str())),
                    api_keys::previous_secret_expires_at.eq(previous_until),
                    api_keys::secret_lookup.eq(&lookup),
                    api_keys::previous_secret_lookup
                        .eq(previous_until.and(row.secret_lookup.as_deref())),
                    api_keys::rotated_at.eq(now.naive_utc()),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyRotated, client_id),
                None,
                json!({
                    "previous_secret_expires_at": previous_until.map(|t| rfc3339(from_db(t))),
                }),
                now,
            )?;
            let key = Key::new(row, owner, now);
            self.notify(conn, Event::Rotated, &key, caller, now)?;
            Ok::<_, KeyError>(key)
        })?;
        Ok(IssuedKey::new(key, secret))
    }

    /// Changes a key's usage envelope: each part the change gives is
    /// replaced. The next token request on every process obeys it (the
    /// credential is read afresh each time). Audited with the envelope
    /// before and after.
    pub fn set_envelope(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        change: &EnvelopeChange,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id)?;
            if change.is_empty() {
                return Err(KeyError::NothingToChange);
            }
            rules::refuse_unless_active(&row, now)?;
            let before = row.allowed_networks.clone().unwrap_or_default();
            let before_limit = row
                .max_tokens_per_minute
                .and_then(|n| u32::try_from(n).ok());
            let networks = change.allowed_networks.clone().unwrap_or(before.clone());
            let limit = change.max_tokens_per_minute.unwrap_or(before_limit);
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::allowed_networks.eq(networks.to_stored()),
                    api_keys::max_tokens_per_minute.eq(rules::stored_limit(limit)),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyUpdated, client_id),
                None,
                json!({
                    "allowed_networks": { "from": before.to_vec(), "to": networks.to_vec() },
                    "max_tokens_per_minute": { "from": before_limit, "to": limit },
                }),
                now,
            )?;
            Ok(Key::new(row, owner, now))
        })
    }

    /// Revokes for good: the key stops working at once, grace secrets included.
    pub fn revoke(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        let revocation = Revocation {
            reason,
            event: Event::Revoked,
            source_addr: None,
        };
        self.revoke_and_tell(conn, caller, client_id, revocation, now)
    }

    /// Revokes a key whose secret was reported exposed (`crate::exposure`):
    /// the same revocation, reason `exposed: <source>`, and the owner's email
    /// is the "exposed" one (what was found, where, what to do) instead of
    /// the plain "revoked".
    pub fn revoke_exposed(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        exposure: Exposure<'_>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        let reason = format!("exposed: {}", exposure.source);
        let revocation = Revocation {
            reason: Some(&reason),
            event: Event::Exposed,
            source_addr: exposure.reported_from,
        };
        self.revoke_and_tell(conn, caller, client_id, revocation, now)
    }

    fn revoke_and_tell(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        revocation: Revocation<'_>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id)?;
            let reason = rules::check_reason(revocation.reason)?;
            if row.revoked_at.is_some() {
                return Err(KeyError::AlreadyRevoked(client_id.to_owned()));
            }
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::revoked_at.eq(now.naive_utc()),
                    api_keys::revoked_by.eq(caller.actor()),
                    api_keys::revoked_reason.eq(reason),
                    api_keys::previous_secret_hash.eq(None::<String>),
                    api_keys::previous_secret_expires_at.eq(None::<chrono::NaiveDateTime>),
                    api_keys::previous_secret_lookup.eq(None::<String>),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyRevoked, client_id),
                revocation.source_addr,
                json!({ "reason": reason }),
                now,
            )?;
            let key = Key::new(row, owner, now);
            self.notify(conn, revocation.event, &key, caller, now)?;
            Ok(key)
        })
    }

    fn notify(
        &self,
        conn: &mut DbConnection,
        event: Event,
        key: &Key,
        by: &Caller,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        notify(conn, event, key, (&self.issuer, by), now)
    }
}

/// Queues `event`'s email to the key's owner, in the caller's transaction:
/// it names the keygate (`issuer`) it comes from and who acted.
pub(super) fn notify(
    conn: &mut DbConnection,
    event: Event,
    key: &Key,
    (issuer, by): (&str, &Caller),
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let about = AboutKey {
        id: &key.id,
        owner: &key.owner,
        created_by: &key.created_by,
        view: key,
    };
    mail::enqueue_key_event(conn, event, about, issuer, by.actor(), now)
}

/// A new secret, its hash and its lookup tag.
fn new_secret(tagger: &TokenHasher) -> Result<(PlainSecret, SecretHash, String), KeyError> {
    let secret = PlainSecret::generate();
    let hash = secret.hash().map_err(KeyError::Hash)?;
    let lookup = secret.lookup_tag(tagger);
    Ok((secret, hash, lookup))
}

/// Records in the audit log that `caller` did `action` to the key
/// `client_id`, in the caller's transaction; `source_addr` is the address
/// a request came from, where it matters.
fn record(
    conn: &mut DbConnection,
    (caller, action, client_id): (&Caller, Action, &str),
    source_addr: Option<&str>,
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let entry = audit::Entry {
        actor: caller.actor(),
        action,
        target: client_id,
        source_addr,
        details,
    };
    audit::record(conn, now, entry)
}

/// How a key is revoked: why, which email its owner gets, and the address
/// of the report that asked for it.
struct Revocation<'a> {
    reason: Option<&'a str>,
    event: Event,
    source_addr: Option<&'a str>,
}

/// The key and its owner's email, if the caller may see it; otherwise
/// [`KeyError::NotFound`], exactly as for a key that does not exist.
fn visible_row(
    conn: &mut DbConnection,
    caller: &Caller,
    client_id: &str,
) -> Result<(ApiKey, String), KeyError> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::client_id.eq(client_id))
        .select((ApiKey::as_select(), users::email))
        .first::<(ApiKey, String)>(conn)
        .optional()?
        .filter(|(_, owner)| caller.may_manage_keys_of(owner))
        .ok_or_else(|| KeyError::NotFound(client_id.to_owned()))
}

/// Newest first; all keys, or one owner's (by email, in any case). For
/// callers that decided already who may see them all (the admin console);
/// everyone else goes through [`Service::list`].
pub fn list_api_keys(
    conn: &mut DbConnection,
    owner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Key>, KeyError> {
    let mut query = api_keys::table
        .inner_join(users::table)
        .select((ApiKey::as_select(), users::email))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .into_boxed();
    if let Some(email) = owner {
        let email = email.trim().to_lowercase();
        let id: String = users::table
            .filter(users::email.eq(&email))
            .select(users::id)
            .first(conn)
            .optional()?
            .ok_or(KeyError::OwnerNotFound(email))?;
        query = query.filter(api_keys::owner_id.eq(id));
    }
    let rows: Vec<(ApiKey, String)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(row, owner)| Key::new(row, owner, now))
        .collect())
}

/// The email of the owner of the key `client_id`, whoever asks: for
/// resolving who a management API token acts for.
pub fn owner_of(conn: &mut DbConnection, client_id: &ClientId) -> Result<String, KeyError> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::client_id.eq(client_id.as_str()))
        .select(users::email)
        .first(conn)
        .optional()?
        .ok_or_else(|| KeyError::NotFound(client_id.to_string()))
}
