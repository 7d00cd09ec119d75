//! Finding a key by its secret alone: the lookup tag
//! ([`PlainSecret::lookup_tag`]) stored beside each secret's hash, for a
//! report of an exposed secret (`crate::exposure`).
//!
//! [`PlainSecret::lookup_tag`]: super::PlainSecret::lookup_tag

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::secret::{ClientId, SecretHash};
use crate::db::DbConnection;
use crate::db::schema::api_keys;
use crate::time::from_db;

/// A key found by a lookup tag: client ID, current hash and tag, previous
/// hash and until when it works.
type LookupRow = (
    ClientId,
    SecretHash,
    Option<String>,
    Option<SecretHash>,
    Option<NaiveDateTime>,
);

/// The live key (neither revoked nor expired) a secret's lookup tag
/// ([`PlainSecret::lookup_tag`]) points to, with the one hash the secret
/// must verify against: the current secret's, or the previous one's while
/// its grace runs. A tag of a previous secret past its grace finds nothing.
pub fn find_by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
    now: DateTime<Utc>,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    by_secret_lookup(conn, tag, Some(now))
}

/// Any key, live or not, a secret's lookup tag points to, with the hash the
/// secret must verify against: whether a reported string is a secret this
/// keygate issued (GitHub's `true_positive`), revoked, expired or rotated
/// away since. A previous secret's hash is kept only while its key is not
/// revoked, so such a secret of a key revoked since finds nothing.
pub fn find_any_by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    by_secret_lookup(conn, tag, None)
}

/// The key `tag` points to and the hash to verify against: among the keys
/// live at `live_at` (a previous secret only within its grace), or among
/// all keys without it.
fn by_secret_lookup(
    conn: &mut DbConnection,
    tag: &str,
    live_at: Option<DateTime<Utc>>,
) -> QueryResult<Option<(ClientId, SecretHash)>> {
    let mut query = api_keys::table
        .filter(
            api_keys::secret_lookup
                .eq(tag)
                .or(api_keys::previous_secret_lookup.eq(tag)),
        )
        .select((
            api_keys::client_id,
            api_keys::secret_hash,
            api_keys::secret_lookup,
            api_keys::previous_secret_hash,
            api_keys::previous_secret_expires_at,
        ))
        .limit(2)
        .into_boxed();
    if let Some(now) = live_at {
        query = query.filter(api_keys::revoked_at.is_null()).filter(
            api_keys::expires_at
                .is_null()
                .or(api_keys::expires_at.gt(now.naive_utc())),
        );
    }
    let rows: Vec<LookupRow> = query.load(conn)?;
    let in_grace = |until: Option<NaiveDateTime>| match (live_at, until) {
        (None, _) => true,
        (Some(now), Some(until)) => from_db(until) > now,
        (Some(_), None) => false,
    };
    Ok(rows
        .into_iter()
        .find_map(|(client_id, current, current_tag, previous, until)| {
            if current_tag.as_deref() == Some(tag) {
                Some((client_id, current))
            } else {
                previous
                    .filter(|_| in_grace(until))
                    .map(|hash| (client_id, hash))
            }
        }))
}
