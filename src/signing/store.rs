//! Signing keys in the database.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use serde::Serialize;

use super::{AtRest, CryptoError, KeyPair, KeyringError, SigningAlg};
use crate::audit::{self, Action};
use crate::db::schema::signing_keys;
use crate::db::{DbConnection, write_transaction};
use crate::events;
use crate::time::from_db;

/// How long past the token lifetime a retired key stays published: covers
/// tokens another process signed before its next keyring refresh.
pub const PUBLISH_MARGIN: Duration = Duration::seconds(60);

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub alg: String,
    pub private_key: Vec<u8>,
    pub public_jwk: String,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub publish_until: Option<NaiveDateTime>,
}

impl SigningKeyRow {
    pub fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.retired_at.map(from_db)
    }

    pub fn publish_until(&self) -> Option<DateTime<Utc>> {
        self.publish_until.map(from_db)
    }

    pub fn decrypt(&self, at_rest: &AtRest) -> Result<KeyPair, CryptoError> {
        let alg: SigningAlg = self.alg.parse().map_err(|_| CryptoError::Parse("known"))?;
        let der = at_rest.open(&self.kid, &self.private_key)?;
        KeyPair::from_pkcs8(alg, &der)
    }
}

/// What `signing-keys list` shows.
#[derive(Debug, Serialize)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub alg: String,
    pub status: &'static str,
    pub created_at: String,
    pub retired_at: Option<String>,
    pub published_until: Option<String>,
}

/// Keys still in the JWKS, newest first.
pub fn load_published_keys(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(
            signing_keys::retired_at
                .is_null()
                .or(signing_keys::publish_until.gt(now.naive_utc())),
        )
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .select(SigningKeyRow::as_select())
        .load(conn)
}

fn new_row(
    at_rest: &AtRest,
    alg: SigningAlg,
    now: DateTime<Utc>,
) -> Result<SigningKeyRow, CryptoError> {
    let der = KeyPair::generate(alg)?;
    let pair = KeyPair::from_pkcs8(alg, &der)?;
    let kid = pair.thumbprint();
    Ok(SigningKeyRow {
        private_key: at_rest.seal(&kid, &der)?,
        public_jwk: pair.public_jwk(&kid).to_string(),
        kid,
        alg: alg.as_str().to_owned(),
        created_at: now.naive_utc(),
        retired_at: None,
        publish_until: None,
    })
}

/// Serialises key creation across processes starting at once on PostgreSQL
/// (SQLite's `BEGIN IMMEDIATE` already does).
fn lock_signing_keys(conn: &mut DbConnection) -> QueryResult<()> {
    if let DbConnection::Pg(pg) = conn {
        pg.batch_execute("SELECT pg_advisory_xact_lock(7411037)")?;
    }
    Ok(())
}

/// Creates the first signing key if there is no active one. Returns its kid
/// when it created one.
pub fn ensure_signing_key(
    conn: &mut DbConnection,
    at_rest: &AtRest,
    alg: SigningAlg,
    now: DateTime<Utc>,
) -> Result<Option<String>, KeyringError> {
    write_transaction(conn, |conn| {
        lock_signing_keys(conn)?;
        let active: i64 = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .count()
            .get_result(conn)?;
        if active > 0 {
            return Ok(None);
        }
        let row = new_row(at_rest, alg, now)?;
        diesel::insert_into(signing_keys::table)
            .values(&row)
            .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor: audit::SYSTEM,
                action: Action::SigningKeyCreated,
                target: &row.kid,
                source_addr: None,
                details: serde_json::json!({ "alg": row.alg }),
            },
        )?;
        Ok(Some(row.kid))
    })
}

/// Makes a new key active at once. The old ones stay published until every
/// token they signed has expired (`token_ttl` plus a margin).
pub fn rotate_signing_key(
    conn: &mut DbConnection,
    at_rest: &AtRest,
    alg: SigningAlg,
    token_ttl: Duration,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<String, KeyringError> {
    let row = new_row(at_rest, alg, now)?;
    write_transaction(conn, |conn| {
        lock_signing_keys(conn)?;
        let retired: Vec<String> = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .select(signing_keys::kid)
            .load(conn)?;
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set((
                signing_keys::retired_at.eq(now.naive_utc()),
                signing_keys::publish_until.eq((now + token_ttl + PUBLISH_MARGIN).naive_utc()),
            ))
            .execute(conn)?;
        diesel::insert_into(signing_keys::table)
            .values(&row)
            .execute(conn)?;
        // Keys unpublished for a day serve no one; keep the table small.
        diesel::delete(
            signing_keys::table
                .filter(signing_keys::publish_until.lt((now - Duration::days(1)).naive_utc())),
        )
        .execute(conn)?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::SigningKeyRotated,
                target: &row.kid,
                source_addr: None,
                details: serde_json::json!({ "alg": row.alg, "retired": retired }),
            },
        )?;
        let event = events::Event {
            kind: events::EventType::SigningKeyRotated,
            object: &row.kid,
            data: serde_json::json!({
                "kid": row.kid,
                "alg": row.alg,
                "retired": retired,
                "actor": actor,
            }),
        };
        events::emit(conn, event, now)?;
        Ok(row.kid.clone())
    })
}

pub fn list_signing_keys(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<SigningKeyInfo>> {
    let rows: Vec<SigningKeyRow> = signing_keys::table
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .select(SigningKeyRow::as_select())
        .load(conn)?;
    let mut seen_active = false;
    Ok(rows
        .into_iter()
        .map(|row| {
            let SigningKeyRow {
                kid,
                alg,
                created_at,
                retired_at,
                publish_until,
                ..
            } = row;
            let status = match (retired_at, publish_until) {
                (None, _) if !seen_active => {
                    seen_active = true;
                    "active"
                }
                (None, _) => "published",
                (Some(_), Some(until)) if from_db(until) > now => "published",
                _ => "expired",
            };
            SigningKeyInfo {
                kid,
                alg,
                status,
                created_at: crate::time::rfc3339(from_db(created_at)),
                retired_at: retired_at.map(|t| crate::time::rfc3339(from_db(t))),
                published_until: publish_until.map(|t| crate::time::rfc3339(from_db(t))),
            }
        })
        .collect())
}
