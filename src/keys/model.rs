//! API key rows and the shapes they are shown in.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::envelope::AllowedNetworks;
use super::secret::{ClientId, PlainSecret, SecretHash};
use crate::db::schema::api_keys;
use crate::scope::{Audiences, ScopeSet};
use crate::time::{from_db, rfc3339};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: String,
    pub client_id: ClientId,
    pub owner_id: String,
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
}

#[derive(Insertable)]
#[diesel(table_name = api_keys)]
pub struct NewApiKey<'a> {
    pub id: String,
    pub client_id: &'a str,
    pub owner_id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub scopes: String,
    pub audiences: String,
    pub secret_hash: &'a str,
    pub secret_lookup: &'a str,
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
    Active,
    Expired,
    Revoked,
}

impl KeyStatus {
    pub fn of(
        revoked_at: Option<NaiveDateTime>,
        expires_at: Option<NaiveDateTime>,
        now: DateTime<Utc>,
    ) -> Self {
        if revoked_at.is_some() {
            Self::Revoked
        } else if expires_at.is_some_and(|at| from_db(at) <= now) {
            Self::Expired
        } else {
            Self::Active
        }
    }
}

impl ApiKey {
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        KeyStatus::of(self.revoked_at, self.expires_at, now)
    }

    /// The public view: everything but secrets and their hashes.
    pub fn view(&self, owner_email: &str, now: DateTime<Utc>) -> KeyView {
        KeyView {
            client_id: self.client_id.to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
            owner: owner_email.to_owned(),
            scopes: self.scopes.to_vec(),
            audiences: self.audiences.to_vec(),
            created_at: rfc3339(from_db(self.created_at)),
            created_by: self.created_by.clone(),
            expires_at: self.expires_at.map(|t| rfc3339(from_db(t))),
            status: self.status(now),
            last_used_at: self.last_used_at.map(|t| rfc3339(from_db(t))),
            last_used_from: self.last_used_from.clone(),
            last_used_user_agent: self.last_used_user_agent.clone(),
            allowed_networks: self
                .allowed_networks
                .as_ref()
                .map(AllowedNetworks::to_vec)
                .unwrap_or_default(),
            max_tokens_per_minute: self
                .max_tokens_per_minute
                .and_then(|n| u32::try_from(n).ok()),
            rotated_at: self.rotated_at.map(|t| rfc3339(from_db(t))),
            previous_secret_expires_at: self
                .previous_secret_expires_at
                .filter(|t| from_db(*t) > now)
                .map(|t| rfc3339(from_db(t))),
            revoked_at: self.revoked_at.map(|t| rfc3339(from_db(t))),
            revoked_by: self.revoked_by.clone(),
            revoked_reason: self.revoked_reason.clone(),
        }
    }
}

/// What `keys list --json` and the API show of a key.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Key)]
pub struct KeyView {
    pub client_id: String,
    pub name: String,
    pub description: String,
    /// The owner's email.
    pub owner: String,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Who created it: a person's email or "command line".
    pub created_by: String,
    #[schema(format = DateTime, required = true)]
    pub expires_at: Option<String>,
    pub status: KeyStatus,
    #[schema(format = DateTime, required = true)]
    pub last_used_at: Option<String>,
    /// The address of the last recorded token request (behind trusted
    /// proxies, the client's address they forwarded).
    #[schema(required = true)]
    pub last_used_from: Option<String>,
    /// The `User-Agent` of the last recorded token request.
    #[schema(required = true)]
    pub last_used_user_agent: Option<String>,
    /// Networks (CIDRs) the key may be used from; empty: anywhere.
    pub allowed_networks: Vec<String>,
    /// Most tokens the key may be issued per minute; null: no limit.
    #[schema(required = true)]
    pub max_tokens_per_minute: Option<u32>,
    #[schema(format = DateTime, required = true)]
    pub rotated_at: Option<String>,
    /// While a rotation's grace period runs: until when the old secret works.
    #[schema(format = DateTime, required = true)]
    pub previous_secret_expires_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    pub revoked_at: Option<String>,
    #[schema(required = true)]
    pub revoked_by: Option<String>,
    #[schema(required = true)]
    pub revoked_reason: Option<String>,
}

/// A key together with its secret in clear: exists only between creation (or
/// rotation) and the one moment it is shown.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: KeyView,
    pub secret: PlainSecret,
}

impl IssuedKey {
    /// The creation output of INTERFACE.md: the only place the secret appears.
    pub fn to_json(&self) -> Value {
        let shown = IssuedKeyJson {
            client_id: &self.key.client_id,
            client_secret: self.secret.expose(),
            name: &self.key.name,
            description: &self.key.description,
            owner: &self.key.owner,
            scopes: &self.key.scopes,
            audiences: &self.key.audiences,
            created_at: &self.key.created_at,
            expires_at: self.key.expires_at.as_deref(),
            allowed_networks: &self.key.allowed_networks,
            max_tokens_per_minute: self.key.max_tokens_per_minute,
            previous_secret_expires_at: self.key.previous_secret_expires_at.as_deref(),
        };
        serde_json::to_value(shown).unwrap_or(Value::Null)
    }
}

/// The shape of [`IssuedKey::to_json`]: a key with its secret, shown once.
#[derive(Serialize, ToSchema)]
#[schema(as = IssuedKey)]
pub struct IssuedKeyJson<'a> {
    client_id: &'a str,
    /// Shown this once; keygate keeps only a hash.
    client_secret: &'a str,
    name: &'a str,
    description: &'a str,
    /// The owner's email.
    owner: &'a str,
    scopes: &'a [String],
    audiences: &'a [String],
    #[schema(format = DateTime)]
    created_at: &'a str,
    #[schema(format = DateTime, required = true)]
    expires_at: Option<&'a str>,
    /// Networks (CIDRs) the key may be used from; empty: anywhere.
    allowed_networks: &'a [String],
    /// Most tokens the key may be issued per minute; null: no limit.
    #[schema(required = true)]
    max_tokens_per_minute: Option<u32>,
    /// After a rotation with a grace period: until when the old secret works.
    #[schema(format = DateTime, required = true)]
    previous_secret_expires_at: Option<&'a str>,
}
