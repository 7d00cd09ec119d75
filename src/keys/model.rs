//! A key as stored ([`ApiKey`], secrets' hashes included), as shown
//! ([`Key`]: the API, `keys list --json`, the console, the emails) and,
//! once, with its secret ([`IssuedKey`]).

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use super::envelope::AllowedNetworks;
use super::owner::KeyOwner;
use super::secret::{ClientId, PlainSecret, SecretHash};
use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::scope::{Audiences, ScopeSet};
use crate::time::from_db;

/// A row of `api_keys`, each column in its type.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub client_id: ClientId,
    /// The owning person; `None` for a team's key.
    pub owner_id: Option<String>,
    pub name: String,
    pub description: String,
    pub scopes: ScopeSet,
    pub audiences: Audiences,
    pub secret_hash: SecretHash,
    pub previous_secret_hash: Option<SecretHash>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub rotated_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<String>,
    pub revoked_reason: Option<String>,
    /// [`PlainSecret::lookup_tag`] of the current secret (none for keys
    /// created before tags existed).
    pub secret_lookup: Option<String>,
    /// The previous secret's tag, while its grace period runs.
    pub previous_secret_lookup: Option<String>,
    pub allowed_networks: Option<AllowedNetworks>,
    pub max_tokens_per_minute: Option<i32>,
    /// The address the last recorded token request came from.
    pub last_used_from: Option<String>,
    pub last_used_user_agent: Option<String>,
    /// The owning team; `None` for a person's key.
    pub team_id: Option<String>,
    /// Set while the key waits for an admin's approval.
    pub pending_since: Option<NaiveDateTime>,
    pub approved_by: Option<String>,
    pub approved_at: Option<NaiveDateTime>,
    pub auth_method: AuthMethod,
    /// A `private_key_jwt` key's public keys: a JWKS as stored.
    pub public_keys: Option<String>,
    /// Who last used the key when that is not its own client: for a
    /// federated key, the external token's issuer and subject.
    pub last_used_by: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: String,
    pub client_id: &'a str,
    pub owner_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub pending_since: Option<NaiveDateTime>,
    pub name: &'a str,
    pub description: &'a str,
    pub scopes: String,
    pub audiences: String,
    /// Empty for a key without a secret (it verifies nothing).
    pub secret_hash: &'a str,
    pub secret_lookup: Option<&'a str>,
    pub auth_method: AuthMethod,
    pub public_keys: Option<String>,
    pub created_by: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub allowed_networks: Option<String>,
    pub max_tokens_per_minute: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Waiting for an admin's approval: refused like a dead key until then.
    Pending,
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Active, Self::Expired, Self::Revoked];

    pub fn of(
        revoked_at: Option<NaiveDateTime>,
        expires_at: Option<NaiveDateTime>,
        pending_since: Option<NaiveDateTime>,
        now: DateTime<Utc>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| from_db(at) <= now) {
            Self::Expired
        } else if pending_since.is_some() {
            Self::Pending
        } else {
            Self::Active
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// A status as the command line and the API's filters name it.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text.trim())
    }
}

/// How a client proves it holds a key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A shared secret (HTTP Basic or the form body).
    ClientSecret,
    /// A JWT signed with a private key whose public key keygate holds
    /// (RFC 7523 §2.2); the key has no secret.
    PrivateKeyJwt,
    /// A federated key: a workload exchanges its platform's JWT for tokens
    /// (RFC 8693) under a federation's rule; the key has no secret.
    Federation,
}

impl AuthMethod {
    pub const ALL: [Self; 3] = [Self::ClientSecret, Self::PrivateKeyJwt, Self::Federation];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecret => "client_secret",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::Federation => "federation",
        }
    }

    /// The stored name; an unknown one (a newer release's) as a method that
    /// accepts no secret.
    fn from_stored(text: String) -> Self {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == text)
            .unwrap_or(Self::Federation)
    }

    /// True when the key has a secret (to rotate, to show once, to scan for).
    pub fn has_secret(self) -> bool {
        self == Self::ClientSecret
    }
}

crate::text_column!(AuthMethod, AuthMethod::from_stored);

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for AuthMethod
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.as_str().to_sql(out)
    }
}

/// The backend of [`DbConnection`]: both engines at once.
type Backend = <DbConnection as diesel::Connection>::Backend;

impl ApiKey {
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::of(self.revoked_at, self.expires_at, self.pending_since, now)
    }

    /// The row's columns for a `RETURNING` clause, as a tuple of columns
    /// (which either engine can write, where `as_returning` is one of
    /// `MultiBackend` only).
    pub(super) fn columns() -> <Self as Selectable<Backend>>::SelectExpression {
        <Self as Selectable<Backend>>::construct_selection()
    }
}

/// What `keys list --json` and the API show of a key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Key {
    // The row's own ID: for the emails' dedupe keys, never shown.
    #[serde(skip)]
    pub id: String,
    #[schema(value_type = String)]
    pub client_id: ClientId,
    pub name: String,
    pub description: String,
    /// The owning person's email; `null` for a team's key.
    #[schema(required = true)]
    pub owner: Option<String>,
    /// The owning team's name; `null` for a person's key.
    #[schema(required = true)]
    pub team: Option<String>,
    #[schema(value_type = Vec<String>)]
    pub scopes: ScopeSet,
    #[schema(value_type = Vec<String>)]
    pub audiences: Audiences,
    #[serde(with = "crate::time::utc")]
    pub created_at: DateTime<Utc>,
    /// Who created it: a person's email or "command line".
    pub created_by: String,
    pub auth_method: AuthMethod,
    /// A `private_key_jwt` key's public keys, by their RFC 7638 SHA-256
    /// thumbprints (base64url); empty for other keys.
    pub public_key_thumbprints: Vec<String>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// The address of the last recorded token request (behind trusted
    /// proxies, the client's address they forwarded).
    #[schema(required = true)]
    pub last_used_from: Option<String>,
    /// The `User-Agent` of the last recorded token request.
    #[schema(required = true)]
    pub last_used_user_agent: Option<String>,
    /// For a federated key: the issuer and subject of the external token
    /// last exchanged (`"https://issuer subject"`); otherwise null.
    #[schema(required = true)]
    pub last_used_by: Option<String>,
    /// Networks (CIDRs) the key may be used from; empty: anywhere.
    #[schema(value_type = Vec<String>)]
    pub allowed_networks: AllowedNetworks,
    /// Most tokens the key may be issued per minute; null: no limit.
    #[schema(required = true)]
    pub max_tokens_per_minute: Option<u32>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub rotated_at: Option<DateTime<Utc>>,
    /// While a rotation's grace period runs: until when the old secret works.
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub revoked_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub revoked_by: Option<String>,
    #[schema(required = true)]
    pub revoked_reason: Option<String>,
    /// Since when the key waits for approval (`status` is `pending`).
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub pending_since: Option<DateTime<Utc>>,
    /// The admin who approved it, if it needed approval.
    #[schema(required = true)]
    pub approved_by: Option<String>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub approved_at: Option<DateTime<Utc>>,
}

impl Key {
    /// The row as shown at `now` (its status, and the previous secret's
    /// end only while it still works), with its owner.
    pub fn new(row: ApiKey, owner: KeyOwner, now: DateTime<Utc>) -> Self {
        let status = row.status(now);
        let (owner, team) = owner.into_columns();
        Self {
            id: row.id,
            client_id: row.client_id,
            name: row.name,
            description: row.description,
            owner,
            team,
            auth_method: row.auth_method,
            public_key_thumbprints: row
                .public_keys
                .as_deref()
                .map(super::public_keys::thumbprints)
                .unwrap_or_default(),
            last_used_by: row.last_used_by,
            scopes: row.scopes,
            audiences: row.audiences,
            created_at: from_db(row.created_at),
            created_by: row.created_by,
            expires_at: row.expires_at.map(from_db),
            status,
            last_used_at: row.last_used_at.map(from_db),
            last_used_from: row.last_used_from,
            last_used_user_agent: row.last_used_user_agent,
            allowed_networks: row.allowed_networks.unwrap_or_default(),
            max_tokens_per_minute: row
                .max_tokens_per_minute
                .and_then(|n| u32::try_from(n).ok()),
            rotated_at: row.rotated_at.map(from_db),
            previous_secret_expires_at: row
                .previous_secret_expires_at
                .map(from_db)
                .filter(|until| *until > now),
            revoked_at: row.revoked_at.map(from_db),
            revoked_by: row.revoked_by,
            revoked_reason: row.revoked_reason,
            pending_since: row.pending_since.map(from_db),
            approved_by: row.approved_by,
            approved_at: row.approved_at.map(from_db),
        }
    }

    /// Who owns it: a person or a team.
    pub fn holder(&self) -> KeyOwner {
        KeyOwner::from_columns(self.owner.clone(), self.team.clone())
    }
}

/// A key together with its secret in clear: made at creation or rotation,
/// shown that once (the API's answer, `keys create --json`, the console's
/// secret page) and dropped. The only serialisable type holding a secret.
#[derive(Debug, Serialize, ToSchema)]
// The description the published document has always carried.
#[schema(description = "The shape of [`IssuedKey::to_json`]: a key with its secret, shown once.")]
pub struct IssuedKey {
    #[schema(value_type = String)]
    pub client_id: ClientId,
    /// Shown this once; keygate keeps only a hash. `null` for a key
    /// without a secret (`auth_method` other than `client_secret`).
    #[serde(serialize_with = "expose")]
    #[schema(value_type = Option<String>, required = true)]
    pub client_secret: Option<PlainSecret>,
    pub name: String,
    pub description: String,
    /// The owning person's email; `null` for a team's key.
    #[schema(required = true)]
    pub owner: Option<String>,
    /// The owning team's name; `null` for a person's key.
    #[schema(required = true)]
    pub team: Option<String>,
    /// Who created it: a person's email or "command line".
    pub created_by: String,
    /// `pending` when an admin must approve it before it works.
    pub status: KeyStatus,
    pub auth_method: AuthMethod,
    /// A `private_key_jwt` key's public keys, by their RFC 7638 SHA-256
    /// thumbprints (base64url); empty for other keys.
    pub public_key_thumbprints: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub scopes: ScopeSet,
    #[schema(value_type = Vec<String>)]
    pub audiences: Audiences,
    #[serde(with = "crate::time::utc")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Networks (CIDRs) the key may be used from; empty: anywhere.
    #[schema(value_type = Vec<String>)]
    pub allowed_networks: AllowedNetworks,
    /// Most tokens the key may be issued per minute; null: no limit.
    #[schema(required = true)]
    pub max_tokens_per_minute: Option<u32>,
    /// After a rotation with a grace period: until when the old secret works.
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

impl IssuedKey {
    pub fn new(key: Key, secret: Option<PlainSecret>) -> Self {
        Self {
            client_id: key.client_id,
            client_secret: secret,
            name: key.name,
            description: key.description,
            owner: key.owner,
            team: key.team,
            created_by: key.created_by,
            status: key.status,
            auth_method: key.auth_method,
            public_key_thumbprints: key.public_key_thumbprints,
            scopes: key.scopes,
            audiences: key.audiences,
            created_at: key.created_at,
            expires_at: key.expires_at,
            allowed_networks: key.allowed_networks,
            max_tokens_per_minute: key.max_tokens_per_minute,
            previous_secret_expires_at: key.previous_secret_expires_at,
        }
    }
}

fn expose<S: serde::Serializer>(secret: &Option<PlainSecret>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}
