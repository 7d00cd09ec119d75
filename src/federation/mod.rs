//! Workload identity federation (RFC 8693 token exchange): a federation
//! trusts one external issuer's JWTs whose `sub` matches a pattern, whose
//! `aud` holds an audience and whose claims hold given values, and owns a
//! federated key (no secret) whose tokens such a workload gets.
//!
//! - this module: the rules (`federations` table) and their service —
//!   added with their key in one transaction, listed, removed (the key
//!   revoked);
//! - [`pattern`]: the subject pattern;
//! - [`jwks`]: the trusted issuers' public keys, cached per process;
//! - [`verify`]: a subject token checked against a rule.

pub mod jwks;
pub mod pattern;
pub mod verify;

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::db::schema::{api_keys, federations};
use crate::db::{DbConnection, is_unique_violation, write_transaction};
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::keys::{self, Caller, Envelope, KeyError, KeyOwner, NewCredential, NewKeyRequest};
use crate::scope::{Audience, ScopeSet};
use crate::signing::TokenHasher;
use crate::time::from_db;

pub use jwks::{JwksCache, JwksTuning};
pub use verify::Rule;

/// Longest federation name.
pub const MAX_NAME_LEN: usize = 64;
/// Most claim conditions of one federation.
pub const MAX_CLAIMS: usize = 20;
/// Longest issuer URL or audience.
pub const MAX_URL_LEN: usize = 2000;

#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    #[error("a federation needs a name of 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.'")]
    InvalidName,
    #[error("issuer: {0}")]
    InvalidIssuer(String),
    #[error("{0}")]
    InvalidSubject(String),
    #[error("the audience must be 1 to {MAX_URL_LEN} characters without control characters")]
    InvalidAudience,
    #[error("{0}")]
    InvalidClaim(String),
    #[error("a federation named {0:?} exists already")]
    NameTaken(String),
    #[error("no federation {0:?} (see `keygate federations list`)")]
    NotFound(String),
    #[error("give the owner: a person's email or a team's name, not both")]
    InvalidOwner,
    #[error("only an admin may manage federations")]
    Forbidden,
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(FederationError);

impl FederationError {
    /// Every code of a `FederationError` of its own (a key's refusals keep
    /// theirs), with its kind.
    pub const CODES: &[(ErrorKind, &'static str)] = &[
        (ErrorKind::Invalid, "invalid_name"),
        (ErrorKind::Invalid, "invalid_issuer"),
        (ErrorKind::Invalid, "invalid_subject"),
        (ErrorKind::Invalid, "invalid_audience"),
        (ErrorKind::Invalid, "invalid_claim"),
        (ErrorKind::Conflict, "federation_exists"),
        (ErrorKind::NotFound, "federation_not_found"),
        (ErrorKind::Invalid, "invalid_owner"),
        (ErrorKind::Forbidden, "insufficient_scope"),
    ];
}

impl FeatureError for FederationError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidName => "invalid_name",
            Self::InvalidIssuer(_) => "invalid_issuer",
            Self::InvalidSubject(_) => "invalid_subject",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::NameTaken(_) => "federation_exists",
            Self::NotFound(_) => "federation_not_found",
            Self::InvalidOwner => "invalid_owner",
            Self::Forbidden => "insufficient_scope",
            Self::Key(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::NameTaken(_) => ErrorKind::Conflict,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Forbidden => ErrorKind::Forbidden,
            Self::Key(e) => e.kind(),
            Self::Store(e) => e.kind(),
            _ => ErrorKind::Invalid,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::InvalidName | Self::NameTaken(_) => Some("name"),
            Self::InvalidIssuer(_) => Some("issuer"),
            Self::InvalidSubject(_) => Some("subject"),
            Self::InvalidAudience => Some("audience"),
            Self::InvalidClaim(_) => Some("claims"),
            Self::InvalidOwner => Some("owner"),
            Self::Key(e) => e.field(),
            _ => None,
        }
    }
}

/// An issuer URL keygate will fetch keys from: https, or http only on a
/// loopback address; no credentials, query or fragment.
pub fn check_issuer_url(text: &str) -> Result<url::Url, String> {
    if text.len() > MAX_URL_LEN {
        return Err(format!("at most {MAX_URL_LEN} characters"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL may not hold credentials".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the URL may not hold a query or a fragment".into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("must be https (http only on a loopback address)".into()),
        other => Err(format!("scheme {other:?}: must be https")),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

/// A federation as shown: the rule and its key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Federation {
    pub name: String,
    /// The federated key's client ID: the `client_id` of the exchange.
    pub client_id: String,
    pub issuer: String,
    /// The subject pattern (`*` matches any run of characters).
    pub subject: String,
    /// What the external token's `aud` must hold.
    pub audience: String,
    pub scopes: Vec<String>,
    pub id: String,
    /// Claims the external token must carry with these exact values.
    pub claims: BTreeMap<String, String>,
    /// The owning person's email; `null` for a team's.
    #[schema(required = true)]
    pub owner: Option<String>,
    /// The owning team's name; `null` for a person's.
    #[schema(required = true)]
    pub team: Option<String>,
    /// The resources (APIs) its tokens may target.
    pub resources: Vec<String>,
    /// The key's status (`active`, `revoked`, ...).
    pub status: String,
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// The external token's `iss sub` last exchanged.
    #[schema(required = true)]
    pub last_used_by: Option<String>,
    pub created_by: String,
    #[serde(with = "crate::time::utc")]
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = federations)]
struct FederationRow {
    id: String,
    name: String,
    issuer: String,
    subject_pattern: String,
    audience: String,
    claims: String,
    created_by: String,
    created_at: NaiveDateTime,
}

impl FederationRow {
    fn claims(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.claims).unwrap_or_default()
    }

    fn rule(&self) -> Rule {
        Rule {
            issuer: self.issuer.clone(),
            subject_pattern: self.subject_pattern.clone(),
            audience: self.audience.clone(),
            claims: self.claims(),
        }
    }

    fn show(self, key: &keys::Key) -> Federation {
        Federation {
            claims: self.claims(),
            name: self.name,
            client_id: key.client_id.to_string(),
            issuer: self.issuer,
            subject: self.subject_pattern,
            audience: self.audience,
            scopes: key.scopes.iter().map(ToString::to_string).collect(),
            id: self.id,
            owner: key.owner.clone(),
            team: key.team.clone(),
            resources: key
                .audiences
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            status: key.status.as_str().to_owned(),
            last_used_at: key.last_used_at,
            last_used_by: key.last_used_by.clone(),
            created_by: self.created_by,
            created_at: from_db(self.created_at),
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = federations)]
struct NewFederationRow<'a> {
    id: String,
    name: &'a str,
    key_id: &'a str,
    issuer: &'a str,
    subject_pattern: &'a str,
    audience: &'a str,
    claims: String,
    created_by: &'a str,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// What a caller asks for when adding a federation.
#[derive(Debug, Clone)]
pub struct NewFederation {
    pub name: String,
    pub issuer: String,
    pub subject: String,
    /// `None`: keygate's issuer.
    pub audience: Option<String>,
    /// `NAME=VALUE` conditions, already split.
    pub claims: Vec<(String, String)>,
    pub owner: KeyOwner,
    pub scopes: ScopeSet,
    pub resources: Vec<Audience>,
}

/// Parses one `--claim NAME=VALUE`.
pub fn parse_claim(text: &str) -> Result<(String, String), FederationError> {
    let (name, value) = text.split_once('=').ok_or_else(|| {
        FederationError::InvalidClaim(format!("claim {text:?}: write NAME=VALUE"))
    })?;
    Ok((name.trim().to_owned(), value.to_owned()))
}

/// Claims a condition may not name: the rule checks them itself.
const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat"];

fn check_new(
    new: &NewFederation,
    issuer_default: &str,
) -> Result<(String, BTreeMap<String, String>), FederationError> {
    let name = new.name.trim();
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !name_ok {
        return Err(FederationError::InvalidName);
    }
    check_issuer_url(&new.issuer).map_err(FederationError::InvalidIssuer)?;
    pattern::check(&new.subject).map_err(FederationError::InvalidSubject)?;
    let audience = new
        .audience
        .clone()
        .unwrap_or_else(|| issuer_default.to_owned());
    if audience.trim().is_empty()
        || audience.len() > MAX_URL_LEN
        || audience.chars().any(char::is_control)
    {
        return Err(FederationError::InvalidAudience);
    }
    if new.claims.len() > MAX_CLAIMS {
        return Err(FederationError::InvalidClaim(format!(
            "at most {MAX_CLAIMS} claim conditions"
        )));
    }
    let mut claims = BTreeMap::new();
    for (name, value) in &new.claims {
        let bad_name = name.is_empty()
            || name.len() > 100
            || name.chars().any(|c| c.is_control() || c.is_whitespace());
        if bad_name {
            return Err(FederationError::InvalidClaim(format!(
                "claim name {name:?}: 1 to 100 characters, no spaces"
            )));
        }
        if RESERVED_CLAIMS.contains(&name.as_str()) {
            return Err(FederationError::InvalidClaim(format!(
                "claim {name:?} is checked by --issuer, --subject, --audience or the token's \
                 times; use those"
            )));
        }
        if value.len() > 500 || value.chars().any(char::is_control) {
            return Err(FederationError::InvalidClaim(format!(
                "claim {name:?}: a value of at most 500 characters without control characters"
            )));
        }
        if claims.insert(name.clone(), value.clone()).is_some() {
            return Err(FederationError::InvalidClaim(format!(
                "claim {name:?} given twice"
            )));
        }
    }
    Ok((audience, claims))
}

/// Adds a federation and its federated key — the key through the keys
/// service (scopes, role, approval, audit, emails, events of any key) —
/// in one transaction: both or neither.
pub fn add(
    conn: &mut DbConnection,
    keys: &keys::Service,
    caller: &Caller,
    new: NewFederation,
    issuer: &str,
    tagger: &TokenHasher,
    now: DateTime<Utc>,
) -> Result<Federation, FederationError> {
    if !caller.is_admin() {
        return Err(FederationError::Forbidden);
    }
    let (audience, claims) = check_new(&new, issuer)?;
    let name = new.name.trim().to_owned();
    write_transaction(conn, |conn| {
        let taken = federations::table
            .filter(federations::name.eq(&name))
            .count()
            .get_result::<i64>(conn)?;
        if taken > 0 {
            return Err(FederationError::NameTaken(name.clone()));
        }
        let description = format!("federation {name}: {} {}", new.issuer, new.subject);
        let description: String = description.chars().take(200).collect();
        let request = NewKeyRequest {
            owner: new.owner.clone(),
            name: &name,
            description: &description,
            scopes: new.scopes.clone(),
            audiences: new.resources.clone(),
            expires_in: None,
            envelope: Envelope::default(),
            credential: NewCredential::Federation,
        };
        let issued = keys.create(conn, caller, request, tagger, now)?;
        let key = keys.get(conn, caller, issued.client_id.as_str(), now)?;
        let row = NewFederationRow {
            id: uuid::Uuid::now_v7().to_string(),
            name: &name,
            key_id: &key.id,
            issuer: &new.issuer,
            subject_pattern: &new.subject,
            audience: &audience,
            claims: serde_json::to_string(&claims).unwrap_or_else(|_| "{}".to_owned()),
            created_by: caller.actor(),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        diesel::insert_into(federations::table)
            .values(&row)
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    FederationError::NameTaken(name.clone())
                } else {
                    e.into()
                }
            })?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor: caller.actor(),
                action: Action::FederationCreated,
                target: &name,
                source_addr: None,
                details: json!({
                    "client_id": key.client_id.as_str(),
                    "issuer": new.issuer,
                    "subject": new.subject,
                    "audience": audience,
                    "claims": claims,
                }),
            },
        )?;
        let stored = federations::table
            .filter(federations::id.eq(&row.id))
            .select(FederationRow::as_select())
            .first(conn)?;
        Ok(stored.show(&key))
    })
}

/// Every federation, by name.
pub fn list(
    conn: &mut DbConnection,
    keys: &keys::Service,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Vec<Federation>, FederationError> {
    if !caller.is_admin() {
        return Err(FederationError::Forbidden);
    }
    let rows: Vec<(FederationRow, String)> = federations::table
        .inner_join(api_keys::table)
        .order(federations::name.asc())
        .select((FederationRow::as_select(), api_keys::client_id))
        .load(conn)?;
    rows.into_iter()
        .map(|(row, client_id)| {
            let key = keys.get(conn, caller, &client_id, now)?;
            Ok(row.show(&key))
        })
        .collect()
}

/// One federation, by name or ID.
pub fn get(
    conn: &mut DbConnection,
    keys: &keys::Service,
    caller: &Caller,
    name_or_id: &str,
    now: DateTime<Utc>,
) -> Result<Federation, FederationError> {
    if !caller.is_admin() {
        return Err(FederationError::Forbidden);
    }
    let (row, client_id) = find(conn, name_or_id)?;
    let key = keys.get(conn, caller, &client_id, now)?;
    Ok(row.show(&key))
}

fn find(
    conn: &mut DbConnection,
    name_or_id: &str,
) -> Result<(FederationRow, String), FederationError> {
    federations::table
        .inner_join(api_keys::table)
        .filter(
            federations::name
                .eq(name_or_id)
                .or(federations::id.eq(name_or_id)),
        )
        .select((FederationRow::as_select(), api_keys::client_id))
        .first(conn)
        .optional()?
        .ok_or_else(|| FederationError::NotFound(name_or_id.to_owned()))
}

/// Removes a federation: its key is revoked (at once, on every process)
/// and the rule deleted, audited, in one transaction.
pub fn remove(
    conn: &mut DbConnection,
    keys: &keys::Service,
    caller: &Caller,
    name_or_id: &str,
    now: DateTime<Utc>,
) -> Result<Federation, FederationError> {
    if !caller.is_admin() {
        return Err(FederationError::Forbidden);
    }
    write_transaction(conn, |conn| {
        let (row, client_id) = find(conn, name_or_id)?;
        let key = match keys.revoke(conn, caller, &client_id, Some("federation removed"), now) {
            Ok(key) => key,
            Err(KeyError::AlreadyRevoked(_)) => keys.get(conn, caller, &client_id, now)?,
            Err(other) => return Err(other.into()),
        };
        diesel::delete(federations::table.filter(federations::id.eq(&row.id))).execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor: caller.actor(),
                action: Action::FederationRemoved,
                target: &row.name,
                source_addr: None,
                details: json!({ "client_id": client_id, "issuer": row.issuer }),
            },
        )?;
        Ok(row.show(&key))
    })
}

/// The rule of the federated key `key_id`, if it is one's.
pub fn rule_of_key(conn: &mut DbConnection, key_id: &str) -> QueryResult<Option<(String, Rule)>> {
    let row: Option<FederationRow> = federations::table
        .filter(federations::key_id.eq(key_id))
        .select(FederationRow::as_select())
        .first(conn)
        .optional()?;
    Ok(row.map(|row| (row.name.clone(), row.rule())))
}

/// Records who last used a federated key: the external token's issuer and
/// subject.
pub fn record_last_user(conn: &mut DbConnection, key_id: &str, by: &str) -> QueryResult<()> {
    diesel::update(api_keys::table.find(key_id))
        .set(api_keys::last_used_by.eq(by))
        .execute(conn)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_urls_are_https_or_loopback_http() {
        assert!(check_issuer_url("https://token.actions.githubusercontent.com").is_ok());
        assert!(check_issuer_url("http://127.0.0.1:8080").is_ok());
        assert!(check_issuer_url("http://[::1]:8080/x").is_ok());
        assert!(check_issuer_url("http://localhost:8080").is_err());
        assert!(check_issuer_url("http://issuer.example.com").is_err());
        assert!(check_issuer_url("http://10.0.0.1").is_err());
        assert!(check_issuer_url("ftp://example.com").is_err());
        assert!(check_issuer_url("https://u:p@example.com").is_err());
        assert!(check_issuer_url("https://example.com/?a=b").is_err());
        assert!(check_issuer_url("not a url").is_err());
    }

    #[test]
    fn claims_are_name_equals_value() {
        assert_eq!(
            parse_claim("repository=acme/app").unwrap(),
            ("repository".to_owned(), "acme/app".to_owned())
        );
        assert_eq!(parse_claim("ref=a=b").unwrap().1, "a=b");
        assert!(parse_claim("nothing").is_err());
    }
}
