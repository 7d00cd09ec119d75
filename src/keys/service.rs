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
use super::model::{ApiKey, IssuedKey, Key, KeyStatus, NewApiKey};
use super::notify::{notify, notify_each};
use super::owner::{self, KeyOwner};
use super::rules::{self, KeyLimits, NewCredential, NewKeyRequest};
use super::secret::{ClientId, PlainSecret, SecretHash};
use crate::audit::{self, Action};
use crate::db::schema::{api_keys, teams, users};
use crate::db::{DbConnection, write_transaction};
use crate::duration::HumanDuration;
use crate::mail::Event;
use crate::mail::outbox::QueueError;
use crate::scope::{Audience, audiences_to_stored};
use crate::signing::TokenHasher;
use crate::time::{from_db, rfc3339};

/// The keys of one keygate: the issuer its emails name and the limits every
/// new key obeys.
#[derive(Debug, Clone)]
pub struct Service {
    pub(super) issuer: String,
    pub(super) limits: KeyLimits,
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

    /// Newest first: every key the caller may see (a person: their own and
    /// their teams'), narrowed by `filter`; an owner the caller may not
    /// manage is refused.
    pub fn list(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        filter: &KeyFilter,
        now: DateTime<Utc>,
    ) -> Result<Vec<Key>, KeyError> {
        let reach = match caller.only_owner() {
            None => None,
            Some(own) => {
                if let Some(asked) = &filter.owner
                    && !may_manage(conn, caller, asked)?
                {
                    return Err(KeyError::ForeignOwner);
                }
                Some(own.to_owned())
            }
        };
        load_keys(conn, reach.as_deref(), filter, now)
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
        let (row, owner) = visible_row(conn, caller, client_id, Lock::No)?;
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
        let expires_at = rules::check_request(&request, self.limits.max_lifetime, now)?;
        let client_id = ClientId::generate();
        let auth_method = request.credential.auth_method();
        let (secret, hash, lookup) = match request.credential {
            NewCredential::Secret => {
                let (secret, hash, lookup) = new_secret(tagger)?;
                (Some(secret), Some(hash), Some(lookup))
            }
            NewCredential::PublicKeys(_) | NewCredential::Federation => (None, None, None),
        };
        let public_keys = match &request.credential {
            NewCredential::PublicKeys(jwks) => Some(jwks.clone()),
            NewCredential::Secret | NewCredential::Federation => None,
        };
        let key = write_transaction(conn, |conn| {
            let owner = owner::find_holder(conn, &request.owner)?;
            if !may_manage(conn, caller, &owner.owner)? {
                return Err(KeyError::ForeignOwner);
            }
            owner::check_holder(&owner)?;
            // A person making a key for their team must themselves be
            // allowed to make keys: switching key creation off for someone
            // covers their teams' keys too.
            if let (KeyOwner::Team(_), Some(own)) = (&owner.owner, caller.only_owner()) {
                owner::check_holder(&owner::find_holder(conn, &KeyOwner::person(own))?)?;
            }
            if let Some(max) = self.limits.max_keys_per_user {
                rules::refuse_past_the_limit(conn, &owner, max, now)?;
            }
            let audiences = rules::check_grants(conn, &owner, &request)?;
            let needs_approval =
                !caller.is_admin() && rules::needs_approval(conn, &request.scopes)?;
            let (owner_id, team_id) = owner.columns();
            let new = NewApiKey {
                id: uuid::Uuid::now_v7().to_string(),
                client_id: client_id.as_str(),
                owner_id,
                team_id,
                pending_since: needs_approval.then_some(now.naive_utc()),
                name: request.name.trim(),
                description: request.description.trim(),
                scopes: request.scopes.to_string(),
                audiences: audiences_to_stored(&audiences),
                secret_hash: hash.as_ref().map_or("", SecretHash::as_str),
                secret_lookup: lookup.as_deref(),
                auth_method,
                public_keys: public_keys.clone(),
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
                    "owner": owner.owner.email(),
                    "team": owner.owner.team_name(),
                    "scopes": request.scopes.to_vec(),
                    "audiences": audiences.iter().map(Audience::as_str).collect::<Vec<_>>(),
                    "expires_at": expires_at.map(|t| rfc3339(from_db(t))),
                    "allowed_networks": request.envelope.allowed_networks.to_vec(),
                    "max_tokens_per_minute": request.envelope.max_tokens_per_minute,
                    "pending_approval": needs_approval,
                    "auth_method": auth_method.as_str(),
                }),
                now,
            )?;
            let key = Key::new(row, owner.owner, now);
            self.notify(conn, Event::Created, &key, caller, now)?;
            if needs_approval {
                self.ask_admins(conn, &key, caller, now)?;
            }
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
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
            rules::refuse_unless_active(&row, now)?;
            if !row.auth_method.has_secret() {
                return Err(KeyError::NoSecret(client_id.to_owned()));
            }
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
        Ok(IssuedKey::new(key, Some(secret)))
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
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
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

    /// Replaces a `private_key_jwt` key's public keys (a roll-over: give
    /// the old and the new, later the new alone). The credential epoch
    /// moves with the row, so every process verifies the next assertion
    /// against the new set. Audited with the thumbprints before and after.
    pub fn set_public_keys(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        keys: &super::public_keys::PublicKeys,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        write_transaction(conn, |conn| {
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
            if row.auth_method != super::model::AuthMethod::PrivateKeyJwt {
                return Err(KeyError::NotPrivateKeyJwt(client_id.to_owned()));
            }
            rules::refuse_unless_active(&row, now)?;
            let before = row
                .public_keys
                .as_deref()
                .map(super::public_keys::thumbprints)
                .unwrap_or_default();
            let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
                .set((
                    api_keys::public_keys.eq(Some(keys.jwks.as_str())),
                    api_keys::updated_at.eq(now.naive_utc()),
                ))
                .returning(ApiKey::columns())
                .get_result(conn)?;
            record(
                conn,
                (caller, Action::KeyUpdated, client_id),
                None,
                json!({
                    "public_key_thumbprints": { "from": before, "to": keys.thumbprints },
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
            let (row, owner) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
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

    /// Tells every enabled admin that `key` waits for approval
    /// (`super::approval`).
    fn ask_admins(
        &self,
        conn: &mut DbConnection,
        key: &Key,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<bool, QueueError> {
        let admins = owner::admins(conn)?;
        notify_each(
            conn,
            Event::ApprovalRequested,
            key,
            &admins,
            (&self.issuer, caller),
            now,
        )
    }

    pub(super) fn notify(
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
pub(super) fn record(
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

/// Whether a read of a key for changing it locks its row first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lock {
    No,
    /// On PostgreSQL the row is locked (`FOR UPDATE`) before it is read,
    /// so two changes of one key (a transfer and a revocation) run one
    /// after the other, the second seeing what the first committed. SQLite's
    /// `BEGIN IMMEDIATE` already lets one writer in at a time.
    ForUpdate,
}

/// The key and its owner, if the caller may see it; otherwise
/// [`KeyError::NotFound`], exactly as for a key that does not exist.
pub(super) fn visible_row(
    conn: &mut DbConnection,
    caller: &Caller,
    client_id: &str,
    lock: Lock,
) -> Result<(ApiKey, KeyOwner), KeyError> {
    let not_found = || KeyError::NotFound(client_id.to_owned());
    if let (Lock::ForUpdate, DbConnection::Pg(pg)) = (lock, &mut *conn) {
        api_keys::table
            .filter(api_keys::client_id.eq(client_id))
            .select(api_keys::id)
            .for_update()
            .first::<String>(pg)
            .optional()?
            .ok_or_else(not_found)?;
    }
    let (row, email, team) = api_keys::table
        .left_join(users::table)
        .left_join(teams::table)
        .filter(api_keys::client_id.eq(client_id))
        .select((
            ApiKey::as_select(),
            users::email.nullable(),
            teams::name.nullable(),
        ))
        .first::<(ApiKey, Option<String>, Option<String>)>(conn)
        .optional()?
        .ok_or_else(not_found)?;
    let owner = KeyOwner::from_columns(email, team);
    if !may_manage(conn, caller, &owner)? {
        return Err(not_found());
    }
    Ok((row, owner))
}

/// Whether the caller may see and manage the keys of `owner`: an admin
/// every owner's, a person their own and their teams'.
pub(super) fn may_manage(
    conn: &mut DbConnection,
    caller: &Caller,
    owner: &KeyOwner,
) -> Result<bool, KeyError> {
    let Some(own) = caller.only_owner() else {
        return Ok(true);
    };
    match owner {
        KeyOwner::Person(email) => Ok(email.eq_ignore_ascii_case(own)),
        KeyOwner::Team(name) => Ok(owner::is_member(conn, own, name)?),
    }
}

/// Which keys a list holds: one owner's, one status.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    pub owner: Option<KeyOwner>,
    pub status: Option<KeyStatus>,
}

/// Newest first; the keys `reach` sees (a person's own and their teams';
/// `None`: all) that `filter` keeps. An owner that does not exist is
/// refused. For callers that decided already who may see them all (the
/// admin console) with `reach` `None`; everyone else goes through
/// [`Service::list`].
pub fn load_keys(
    conn: &mut DbConnection,
    reach: Option<&str>,
    filter: &KeyFilter,
    now: DateTime<Utc>,
) -> Result<Vec<Key>, KeyError> {
    let mut query = api_keys::table
        .left_join(users::table)
        .left_join(teams::table)
        .select((
            ApiKey::as_select(),
            users::email.nullable(),
            teams::name.nullable(),
        ))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .into_boxed();
    if let Some(own) = reach {
        let own = own.trim().to_lowercase();
        let teams = owner::team_ids_of(conn, &own)?;
        query = query.filter(
            users::email
                .nullable()
                .eq(own)
                .or(api_keys::team_id.eq_any(teams)),
        );
    }
    match &filter.owner {
        None => {}
        Some(asked) => {
            let holder = owner::find_holder(conn, asked)?;
            query = match holder.columns() {
                (_, Some(team)) => query.filter(api_keys::team_id.eq(team.to_owned())),
                (person, None) => query.filter(api_keys::owner_id.eq(person.map(str::to_owned))),
            };
        }
    }
    if filter.status == Some(KeyStatus::Pending) {
        query = query.filter(api_keys::pending_since.is_not_null());
    }
    let rows: Vec<(ApiKey, Option<String>, Option<String>)> = query.load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(row, email, team)| Key::new(row, KeyOwner::from_columns(email, team), now))
        .filter(|key| filter.status.is_none_or(|status| key.status == status))
        .collect())
}

/// Newest first; all keys, or one person's (by email, in any case).
pub fn list_api_keys(
    conn: &mut DbConnection,
    owner: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Key>, KeyError> {
    let filter = KeyFilter {
        owner: owner.map(KeyOwner::person),
        status: None,
    };
    load_keys(conn, None, &filter, now)
}

/// The email of the person owning the key `client_id`, whoever asks: for
/// resolving who a management API token acts for. A team's key acts for
/// nobody: `None`.
pub fn owner_of(conn: &mut DbConnection, client_id: &ClientId) -> Result<Option<String>, KeyError> {
    let found: Option<Option<String>> = api_keys::table
        .left_join(users::table)
        .filter(api_keys::client_id.eq(client_id.as_str()))
        .select(users::email.nullable())
        .first(conn)
        .optional()?;
    found.ok_or_else(|| KeyError::NotFound(client_id.to_string()))
}
