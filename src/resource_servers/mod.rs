//! Registered APIs (resource servers): an audience identifier and the scopes
//! it understands.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::db::schema::apis;
use crate::db::{DbConnection, is_unique_violation, write_transaction};
use crate::error::AppError;
use crate::scope::{self, Audience, ScopeSet};

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
}

fn serialize_scopes<S: serde::Serializer>(scopes: &str, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ScopeSet::from_stored(scopes).iter())
}

pub fn create_api(
    conn: &mut DbConnection,
    identifier: &Audience,
    name: &str,
    scopes: &ScopeSet,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Api, AppError> {
    if name.trim().is_empty() {
        return Err(AppError::invalid("invalid_name", "an API needs a name"));
    }
    if let Some(builtin) = scopes.iter().find(|s| scope::is_builtin(s)) {
        return Err(AppError::invalid(
            "reserved_scope",
            format!("{builtin:?} is one of keygate's own scopes"),
        ));
    }
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
                    AppError::conflict(
                        "api_exists",
                        format!("an API with identifier {identifier} already exists"),
                    )
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

pub fn find_api(conn: &mut DbConnection, identifier: &str) -> Result<Api, AppError> {
    apis::table
        .filter(apis::identifier.eq(identifier))
        .select(Api::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::not_found(
                "api_not_found",
                format!("no API with identifier {identifier}"),
            )
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
