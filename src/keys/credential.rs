//! The credential the OAuth endpoints read on every request: a key with
//! its owner's state, role and effective scopes, in one join (plus one read
//! of the API registry), and why a key with a right secret may still not be
//! used.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::envelope::AllowedNetworks;
use super::last_use::LastUse;
use super::model::AuthMethod;
use super::secret::{ClientId, SecretHash};
use crate::db::DbConnection;
use crate::db::schema::{api_keys, roles, teams, users};
use crate::resource_servers::{self, ApiScopes};
use crate::scope::{self, Audience, Audiences, ScopeSet};
use crate::time::from_db;
use crate::users::Role;

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
    /// How its client authenticates; only a `client_secret` key has a
    /// secret (the others' `secret_hash` is empty and verifies nothing).
    pub auth_method: AuthMethod,
    /// A `private_key_jwt` key's public keys: a JWKS as stored.
    pub public_keys: Option<String>,
    pub secret_hash: SecretHash,
    pub previous_secret_hash: Option<SecretHash>,
    pub previous_secret_expires_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub last_used_from: Option<String>,
    pub last_used_user_agent: Option<String>,
    pub revoked_at: Option<NaiveDateTime>,
    /// Waiting for an admin's approval.
    pub pending: bool,
    /// The owning person is disabled.
    pub owner_disabled: bool,
    /// The owning team is disabled.
    pub team_disabled: bool,
    /// The owner's role: the person's, or the team's.
    pub role: Role,
    /// The key's scopes that its owner's role still grants.
    pub effective_scopes: ScopeSet,
    /// Where the key may be used from (empty: anywhere).
    pub allowed_networks: AllowedNetworks,
    /// Most tokens per minute (`None`: no limit).
    pub max_tokens_per_minute: Option<u32>,
}

/// Why a key with a right secret may still not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Revoked,
    Expired,
    /// Waiting for an admin's approval.
    PendingApproval,
    OwnerDisabled,
    /// The owning team is disabled.
    TeamDisabled,
    /// The request came from outside the key's allowed networks.
    NetworkNotAllowed,
}

impl Refusal {
    /// The name in the audit log and the debug log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::PendingApproval => "pending_approval",
            Self::OwnerDisabled => "owner_disabled",
            Self::TeamDisabled => "team_disabled",
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
    auth_method: AuthMethod,
    public_keys: Option<String>,
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
    pending_since: Option<NaiveDateTime>,
    #[diesel(select_expression = users::disabled.nullable())]
    owner_disabled: Option<bool>,
    #[diesel(select_expression = teams::disabled.nullable())]
    team_disabled: Option<bool>,
    /// The person's role, or for a team's key the team's.
    #[diesel(embed)]
    role: Role,
}

diesel::define_sql_function! {
    /// SQL's `COALESCE` of two texts: the owner's role name, a person's or a team's.
    fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
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
            auth_method: AuthMethod::ClientSecret,
            public_keys: None,
            secret_hash: SecretHash::from_stored(phc.to_owned()),
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            expires_at: None,
            last_used_at: None,
            last_used_from: None,
            last_used_user_agent: None,
            revoked_at: None,
            pending: false,
            owner_disabled: false,
            team_disabled: false,
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
        } else if self.pending {
            Some(Refusal::PendingApproval)
        } else if self.owner_disabled {
            Some(Refusal::OwnerDisabled)
        } else if self.team_disabled {
            Some(Refusal::TeamDisabled)
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
    let owner_role = coalesce(users::role.nullable(), teams::role.nullable());
    let row: Option<CredentialRow> = api_keys::table
        .left_join(users::table)
        .left_join(teams::table)
        .inner_join(roles::table.on(roles::name.nullable().eq(owner_role)))
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
        auth_method: row.auth_method,
        public_keys: row.public_keys,
        secret_hash: row.secret_hash,
        previous_secret_hash: row.previous_secret_hash,
        previous_secret_expires_at: row.previous_secret_expires_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        last_used_from: row.last_used_from,
        last_used_user_agent: row.last_used_user_agent,
        revoked_at: row.revoked_at,
        pending: row.pending_since.is_some(),
        owner_disabled: row.owner_disabled.unwrap_or(false),
        team_disabled: row.team_disabled.unwrap_or(false),
        role: row.role,
        effective_scopes,
        allowed_networks: row.allowed_networks.unwrap_or_default(),
        max_tokens_per_minute: row
            .max_tokens_per_minute
            .and_then(|n| u32::try_from(n).ok()),
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;
    use crate::audit;
    use crate::db::DatabaseUrl;
    use crate::keys::{Caller, Envelope, KeyLimits, NewKeyRequest, Service};

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
                (&Audience::parse(api).unwrap(), "http://127.0.0.1:8080"),
                "API",
                &ScopeSet::from_stored(scopes),
                audit::COMMAND_LINE,
                now,
            )
            .unwrap();
        }
        let limits = KeyLimits {
            max_lifetime: None,
            expiry_warning: "7d".parse().unwrap(),
            max_keys_per_user: None,
        };
        let issued = Service::new("http://127.0.0.1:8080", limits)
            .create(
                &mut conn,
                &Caller::CommandLine,
                NewKeyRequest {
                    owner: crate::keys::KeyOwner::person("alice@example.com"),
                    name: "ci",
                    description: "",
                    scopes: ScopeSet::from_stored("read"),
                    audiences: Vec::new(),
                    expires_in: None,
                    envelope: Envelope::default(),
                    credential: crate::keys::NewCredential::Secret,
                },
                &crate::signing::MasterKey::generate().token_hasher(),
                now,
            )
            .unwrap();
        let known = issued.client_id;
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
