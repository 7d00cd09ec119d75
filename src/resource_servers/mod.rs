//! Registered APIs (resource servers): an audience identifier and the scopes
//! it understands. A scope belongs to the APIs that define it: a key's
//! audiences follow from its scopes, and a token for one API carries only
//! that API's scopes.

mod error;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::db::schema::apis;
use crate::db::{DbConnection, is_unique_violation, write_transaction};
use crate::scope::{self, Audience, ScopeSet};
pub use error::ResourceServerError;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = apis)]
pub struct Api {
    #[serde(skip)]
    #[schema(ignore)]
    pub id: String,
    /// The audience URI: the `resource` a client asks a token for.
    pub identifier: String,
    pub name: String,
    /// The scopes this API understands.
    #[serde(serialize_with = "serialize_scopes")]
    #[schema(value_type = Vec<String>)]
    pub scopes: String,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: NaiveDateTime,
    /// Those of its scopes that a key created by someone who is not an
    /// admin may hold only once an admin approves it.
    #[serde(serialize_with = "serialize_scopes")]
    #[schema(value_type = Vec<String>)]
    pub approval_scopes: String,
}

fn serialize_scopes<S: serde::Serializer>(scopes: &str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ScopeSet::from_stored(scopes).iter())
}

/// What every API's name and scopes must be.
fn check_definition(name: &str, scopes: &ScopeSet) -> Result<(), ResourceServerError> {
    if name.trim().is_empty() {
        return Err(ResourceServerError::MissingName);
    }
    crate::text::refuse_control_characters("invalid_name", "API's name", name)
        .map_err(ResourceServerError::InvalidName)?;
    if let Some(reserved) = scopes.iter().find(|s| scope::is_reserved(s)) {
        return Err(ResourceServerError::ReservedScope {
            scope: reserved.to_owned(),
        });
    }
    Ok(())
}

/// Registers the API `identifier`, which may not be the `issuer`: a token
/// for keygate itself would otherwise be a token for that API too.
pub fn create_api(
    conn: &mut DbConnection,
    (identifier, issuer): (&Audience, &str),
    name: &str,
    scopes: &ScopeSet,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Api, ResourceServerError> {
    if identifier.is_issuer(issuer) {
        return Err(ResourceServerError::IssuerIdentifier {
            identifier: identifier.to_string(),
        });
    }
    check_definition(name, scopes)?;
    write_transaction(conn, |conn| {
        diesel::insert_into(apis::table)
            .values((
                apis::id.eq(uuid::Uuid::now_v7().to_string()),
                apis::identifier.eq(identifier.as_str()),
                apis::name.eq(name.trim()),
                apis::scopes.eq(scopes.to_string()),
                apis::created_at.eq(now.naive_utc()),
                apis::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    ResourceServerError::ApiExists {
                        identifier: identifier.to_string(),
                    }
                } else {
                    e.into()
                }
            })?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::ApiCreated,
                target: identifier.as_str(),
                source_addr: None,
                details: serde_json::json!({ "name": name.trim(), "scopes": scopes.to_vec() }),
            },
        )?;
        find_api(conn, identifier.as_str())
    })
}

/// Renames an API or changes the scopes it defines. A scope taken away is
/// no longer put in tokens for this API, whatever keys hold it (a token's
/// scopes are those its audience defines).
pub fn update_api(
    conn: &mut DbConnection,
    identifier: &str,
    name: &str,
    scopes: &ScopeSet,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Api, ResourceServerError> {
    check_definition(name, scopes)?;
    write_transaction(conn, |conn| {
        let before = find_api(conn, identifier)?;
        // A scope no longer defined no longer needs approval either.
        let approval =
            ScopeSet::from_stored(&before.approval_scopes).filter(|s| scopes.contains(s));
        diesel::update(apis::table.find(&before.id))
            .set((
                apis::name.eq(name.trim()),
                apis::scopes.eq(scopes.to_string()),
                apis::approval_scopes.eq(approval.to_string()),
                apis::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::ApiUpdated,
                target: identifier,
                source_addr: None,
                details: serde_json::json!({ "name": name.trim(), "scopes": scopes.to_vec() }),
            },
        )?;
        find_api(conn, identifier)
    })
}

/// Marks which of an API's scopes need an admin's approval (INTERFACE.md
/// "Approval"); every one must be a scope the API defines. Replaces the
/// previous set; an empty set: none needs approval.
pub fn set_approval_scopes(
    conn: &mut DbConnection,
    identifier: &str,
    approval: &ScopeSet,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Api, ResourceServerError> {
    write_transaction(conn, |conn| {
        let before = find_api(conn, identifier)?;
        let defined = ScopeSet::from_stored(&before.scopes);
        if let Some(scope) = approval.iter().find(|s| !defined.contains(s)) {
            return Err(ResourceServerError::ApprovalScopeUndefined {
                scope: scope.to_owned(),
            });
        }
        diesel::update(apis::table.find(&before.id))
            .set((
                apis::approval_scopes.eq(approval.to_string()),
                apis::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::ApiUpdated,
                target: identifier,
                source_addr: None,
                details: serde_json::json!({
                    "approval_scopes": {
                        "from": ScopeSet::from_stored(&before.approval_scopes).to_vec(),
                        "to": approval.to_vec(),
                    }
                }),
            },
        )?;
        find_api(conn, identifier)
    })
}

/// What a change to an API changes; `None`: left as it is.
#[derive(Debug, Clone, Default)]
pub struct ApiChange {
    pub name: Option<String>,
    pub scopes: Option<ScopeSet>,
    /// Replaces the scopes that need approval; empty: none does.
    pub approval_scopes: Option<ScopeSet>,
}

impl ApiChange {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.scopes.is_none() && self.approval_scopes.is_none()
    }
}

/// Applies every part of `change` in one transaction: the name and scopes
/// ([`update_api`]), then the scopes needing approval
/// ([`set_approval_scopes`], checked against the scopes as changed). If one
/// part is refused, none is applied. An empty change changes nothing.
pub fn change_api(
    conn: &mut DbConnection,
    identifier: &str,
    change: &ApiChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Api, ResourceServerError> {
    write_transaction(conn, |conn| {
        let mut api = find_api(conn, identifier)?;
        if change.name.is_some() || change.scopes.is_some() {
            let name = change.name.clone().unwrap_or_else(|| api.name.clone());
            let scopes = change
                .scopes
                .clone()
                .unwrap_or_else(|| ScopeSet::from_stored(&api.scopes));
            api = update_api(conn, identifier, &name, &scopes, actor, now)?;
        }
        if let Some(approval) = &change.approval_scopes {
            api = set_approval_scopes(conn, identifier, approval, actor, now)?;
        }
        Ok(api)
    })
}

/// Every scope that some API says needs approval.
pub fn all_approval_scopes(conn: &mut DbConnection) -> QueryResult<ScopeSet> {
    let lists: Vec<String> = apis::table.select(apis::approval_scopes).load(conn)?;
    Ok(lists
        .iter()
        .flat_map(|l| ScopeSet::from_stored(l).to_vec())
        .collect())
}

pub fn find_api(conn: &mut DbConnection, identifier: &str) -> Result<Api, ResourceServerError> {
    apis::table
        .filter(apis::identifier.eq(identifier))
        .select(Api::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| ResourceServerError::ApiNotFound {
            identifier: identifier.to_owned(),
        })
}

pub fn list_apis(conn: &mut DbConnection) -> QueryResult<Vec<Api>> {
    apis::table
        .order(apis::identifier.asc())
        .select(Api::as_select())
        .load(conn)
}

/// Every scope any registered API understands.
pub fn all_api_scopes(conn: &mut DbConnection) -> QueryResult<ScopeSet> {
    let lists: Vec<String> = apis::table.select(apis::scopes).load(conn)?;
    Ok(lists
        .iter()
        .flat_map(|l| ScopeSet::from_stored(l).to_vec())
        .collect())
}

/// Every scope keygate knows: its own and those of the registered APIs.
pub fn known_scopes(conn: &mut DbConnection) -> QueryResult<ScopeSet> {
    let mut all = all_api_scopes(conn)?.to_vec();
    all.extend(scope::BUILTIN_SCOPES.iter().map(|s| (*s).to_owned()));
    Ok(all.into_iter().collect())
}

/// Which registered API defines which scopes, as read for one decision: all
/// APIs, or only a key's audiences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiScopes(Vec<(Audience, ScopeSet)>);

impl FromIterator<(Audience, ScopeSet)> for ApiScopes {
    fn from_iter<I: IntoIterator<Item = (Audience, ScopeSet)>>(items: I) -> Self {
        Self(items.into_iter().collect())
    }
}

impl ApiScopes {
    /// The scopes the API `identifier` defines; `None` when it is not
    /// registered (or was not read).
    pub fn of(&self, identifier: &str) -> Option<&ScopeSet> {
        self.0
            .iter()
            .find(|(api, _)| api.as_str() == identifier)
            .map(|(_, scopes)| scopes)
    }

    /// Every scope these APIs define.
    pub fn all(&self) -> ScopeSet {
        self.0
            .iter()
            .flat_map(|(_, scopes)| scopes.iter())
            .collect()
    }

    /// The APIs defining at least one of `scopes`: the audiences of a key
    /// created without any. keygate's own scopes point at no API.
    pub fn defining_any(&self, scopes: &ScopeSet) -> Vec<Audience> {
        self.0
            .iter()
            .filter(|(_, defined)| scopes.iter().any(|s| defined.contains(s)))
            .map(|(api, _)| api.clone())
            .collect()
    }

    /// The first of `scopes` that none of `audiences` defines, keygate's own
    /// left out (they belong to the issuer, which every key may address).
    pub fn first_outside<'s>(
        &self,
        scopes: &'s ScopeSet,
        audiences: &[Audience],
    ) -> Option<&'s str> {
        scopes.iter().find(|s| {
            !scope::is_builtin(s)
                && !audiences
                    .iter()
                    .any(|a| self.of(a.as_str()).is_some_and(|d| d.contains(s)))
        })
    }

    /// Only the APIs among `audiences`.
    pub fn restricted_to(self, audiences: &[Audience]) -> Self {
        Self(
            self.0
                .into_iter()
                .filter(|(api, _)| audiences.contains(api))
                .collect(),
        )
    }
}

/// The scopes of every registered API (`only: None`) or of those among
/// `only`; one query either way, none for an empty `only`.
pub fn load_api_scopes(
    conn: &mut DbConnection,
    only: Option<&[Audience]>,
) -> QueryResult<ApiScopes> {
    let mut query = apis::table
        .select((apis::identifier, apis::scopes))
        .order(apis::identifier.asc())
        .into_boxed();
    if let Some(only) = only {
        if only.is_empty() {
            return Ok(ApiScopes::default());
        }
        query = query.filter(apis::identifier.eq_any(only.iter().map(Audience::as_str)));
    }
    let rows: Vec<(String, String)> = query.load(conn)?;
    Ok(rows
        .iter()
        .map(|(identifier, scopes)| {
            (
                Audience::from_stored(identifier),
                ScopeSet::from_stored(scopes),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "https://a.example.com";
    const B: &str = "https://b.example.com";

    fn registry() -> ApiScopes {
        [(A, "read write"), (B, "read bill")]
            .into_iter()
            .map(|(api, scopes)| (Audience::from_stored(api), ScopeSet::from_stored(scopes)))
            .collect()
    }

    fn scopes(text: &str) -> ScopeSet {
        ScopeSet::from_stored(text)
    }

    fn audiences(list: &[&str]) -> Vec<Audience> {
        list.iter().map(|a| Audience::from_stored(a)).collect()
    }

    #[test]
    fn a_keys_audiences_are_the_apis_its_scopes_belong_to() {
        let apis = registry();
        assert_eq!(apis.defining_any(&scopes("write")), audiences(&[A]));
        assert_eq!(
            apis.defining_any(&scopes("bill keygate:keys")),
            audiences(&[B])
        );
        assert_eq!(apis.defining_any(&scopes("write bill")), audiences(&[A, B]));
        // A scope two APIs define points at both.
        assert_eq!(apis.defining_any(&scopes("read")), audiences(&[A, B]));
        assert!(apis.defining_any(&scopes("keygate:introspect")).is_empty());
        assert!(apis.defining_any(&ScopeSet::default()).is_empty());
    }

    #[test]
    fn scopes_must_belong_to_a_given_audience() {
        let apis = registry();
        let only_a = audiences(&[A]);
        assert_eq!(apis.first_outside(&scopes("read write"), &only_a), None);
        assert_eq!(
            apis.first_outside(&scopes("keygate:keys write"), &only_a),
            None
        );
        assert_eq!(
            apis.first_outside(&scopes("bill write"), &only_a),
            Some("bill")
        );
        assert_eq!(
            apis.first_outside(&scopes("bill"), &audiences(&[A, B])),
            None
        );
        // An unregistered audience defines nothing.
        assert_eq!(
            apis.first_outside(&scopes("read"), &audiences(&["https://gone.example.com"])),
            Some("read")
        );
    }

    #[test]
    fn narrowing_to_audiences_keeps_only_those_apis() {
        let only_b = registry().restricted_to(&audiences(&[B]));
        assert_eq!(only_b.of(B), Some(&scopes("bill read")));
        assert_eq!(only_b.of(A), None);
        assert_eq!(registry().all(), scopes("bill read write"));
    }
}
