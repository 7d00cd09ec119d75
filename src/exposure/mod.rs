//! Leaked secrets: a keygate secret reported exposed revokes its key at
//! once and tells its owner. Possession of the secret is the proof, so the
//! report needs no account: only whoever holds a secret can revoke with it.
//!
//! A secret does not carry its client ID. It finds its key by its lookup
//! tag ([`PlainSecret::lookup_tag`], an HMAC under `KEYGATE_SECRET_KEY`
//! stored beside the argon2 hash), then must verify against that key's
//! hash like any client secret. A string costs one indexed lookup, once
//! however often one report repeats it; only a tag hit costs an argon2
//! verification. Tags are keyed: without the secret key nobody can make a
//! string whose tag hits, so only the holder of a live secret can make a
//! report cost argon2 work (and [`budget`] bounds even that per minute).
//! The answer is the same either way; its timing tells whether a string
//! was a live secret, which is news only to whoever holds it (the token
//! endpoint would confirm it too, and the report revokes it). An earlier
//! design verified every string against a decoy hash to even out that
//! timing: it made each reported string cost ~16 ms of argon2, and a
//! report of 100 random strings from each of many addresses kept every
//! core busy. Keys created before the tags existed have none and cannot be
//! found by a report.
//!
//! Three ways in share [`find_candidate`], [`Candidate::verify`] and
//! [`revoke`]: `POST /oauth/exposed` ([`endpoint`]), GitHub's secret
//! scanning partner alerts at `POST /integrations/github/secret-scanning`
//! ([`github`], signed by the keys of [`github_keys`]) and
//! `keygate keys scan --revoke` (`crate::cli`), which finds secrets in
//! files ([`scan`]).

pub mod budget;
pub mod github_keys;
pub mod scan;

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::db::DbConnection;
use crate::keys::{self, Caller, ClientId, Exposure, Key, KeyError, PlainSecret, SecretHash};
use crate::signing::TokenHasher;

/// Where a report says a secret was found, when it does not say.
pub const DEFAULT_SOURCE: &str = "report";
pub const MAX_SOURCE_LEN: usize = 200;

/// The free text naming where a secret was found: trimmed, 1 to 200
/// printable characters, none a bidirectional control.
pub fn parse_source(text: Option<&str>) -> Result<String, String> {
    let Some(text) = text.map(str::trim) else {
        return Ok(DEFAULT_SOURCE.to_owned());
    };
    if text.is_empty() || text.len() > MAX_SOURCE_LEN {
        return Err(format!(
            "the source must hold 1 to {MAX_SOURCE_LEN} characters"
        ));
    }
    // The source becomes part of the revocation's reason.
    if crate::text::first_refused(text).is_some() {
        return Err("the source may not hold control characters".into());
    }
    Ok(text.to_owned())
}

/// For each secret, the index of the first with the same text: a string
/// repeated within one report is looked up and verified once. Keyed by
/// digest, so the map holds no secret.
pub fn first_occurrences<'a>(secrets: impl IntoIterator<Item = &'a PlainSecret>) -> Vec<usize> {
    let mut first_by_digest: HashMap<[u8; 32], usize> = HashMap::new();
    secrets
        .into_iter()
        .enumerate()
        .map(|(i, secret)| *first_by_digest.entry(secret.digest()).or_insert(i))
        .collect()
}

/// The secrets, each text once, in the order first seen.
pub fn distinct(secrets: Vec<PlainSecret>) -> Vec<PlainSecret> {
    let first_of = first_occurrences(&secrets);
    secrets
        .into_iter()
        .zip(first_of)
        .enumerate()
        .filter(|(i, (_, first))| i == first)
        .map(|(_, (secret, _))| secret)
        .collect()
}

/// The key a reported string may be the secret of, and the hash it must
/// verify against, when its tag found one.
pub struct Candidate {
    found: Option<(ClientId, SecretHash)>,
}

impl Candidate {
    /// A candidate of no key: verifies nothing.
    pub fn none() -> Self {
        Self { found: None }
    }

    /// What a tag lookup found for `secret` (nothing for a string that is
    /// not a well-formed secret, whatever its tag found).
    fn of(secret: &PlainSecret, found: Option<(ClientId, SecretHash)>) -> Self {
        Self {
            found: found.filter(|_| secret.is_well_formed()),
        }
    }

    /// The key's client ID once [`Candidate::verify`] said yes.
    pub fn client_id(&self) -> Option<&ClientId> {
        self.found.as_ref().map(|(client_id, _)| client_id)
    }

    /// Whether the string's tag found a key: only then is there anything
    /// to verify.
    pub fn is_hit(&self) -> bool {
        self.found.is_some()
    }

    /// True only when the string is a well-formed secret that verifies
    /// against the key its tag found. For a hit that is one argon2
    /// verification, ~16 ms of one core: call it off the async workers, on
    /// the bounded argon2 pool. For no hit it costs nothing.
    pub fn verify(&self, secret: &PlainSecret) -> bool {
        self.found
            .as_ref()
            .is_some_and(|(_, hash)| secret.is_well_formed() && hash.verify(secret))
    }
}

/// Looks up the live key `secret`'s tag points to. Runs the same one
/// query for any string, well-formed or not.
pub fn find_candidate(
    conn: &mut DbConnection,
    tagger: &TokenHasher,
    secret: &PlainSecret,
    now: DateTime<Utc>,
) -> diesel::QueryResult<Candidate> {
    let tag = secret.lookup_tag(tagger);
    Ok(Candidate::of(
        secret,
        keys::find_by_secret_lookup(conn, &tag, now)?,
    ))
}

/// Looks up any key, live or not, `secret`'s tag points to
/// ([`keys::find_any_by_secret_lookup`]): to tell a secret this keygate
/// issued, whose key is dead by now, from a string it never issued.
pub fn find_issued(
    conn: &mut DbConnection,
    tagger: &TokenHasher,
    secret: &PlainSecret,
) -> diesel::QueryResult<Candidate> {
    let tag = secret.lookup_tag(tagger);
    Ok(Candidate::of(
        secret,
        keys::find_any_by_secret_lookup(conn, &tag)?,
    ))
}

/// Revokes the key of a verified exposed secret (reason `exposed:
/// <source>`, the "exposed" email, the audit event), once: a key revoked
/// meanwhile (a second report of the same secret) is left as it is and
/// gives `None`. `by` is keygate itself for a report, the command line for
/// `keys scan --revoke`.
pub fn revoke(
    conn: &mut DbConnection,
    (service, by): (&keys::Service, &Caller),
    client_id: &ClientId,
    exposure: Exposure<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Key>, KeyError> {
    match service.revoke_exposed(conn, by, client_id.as_str(), exposure, now) {
        Ok(key) => {
            tracing::warn!(
                client_id = %client_id,
                source = exposure.source,
                "key revoked: its secret was reported exposed"
            );
            Ok(Some(key))
        }
        Err(KeyError::AlreadyRevoked(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The whole path on one connection, argon2 included: for the command
/// line, which has no async workers to keep free.
pub fn revoke_if_live(
    conn: &mut DbConnection,
    acting: (&keys::Service, &Caller),
    tagger: &TokenHasher,
    secret: &PlainSecret,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Option<Key>, KeyError> {
    let candidate = find_candidate(conn, tagger, secret, now)?;
    match candidate.client_id() {
        Some(client_id) if candidate.verify(secret) => {
            let exposure = Exposure {
                source,
                reported_from: None,
            };
            revoke(conn, acting, client_id, exposure, now)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(texts: &[&str]) -> Vec<PlainSecret> {
        texts
            .iter()
            .map(|t| PlainSecret::from_presented((*t).to_owned()))
            .collect()
    }

    #[test]
    fn a_repeated_string_counts_once() {
        let given = secrets(&["a", "b", "a", "c", "b", "a"]);
        assert_eq!(first_occurrences(&given), [0, 1, 0, 3, 1, 0]);
        let kept: Vec<String> = distinct(given)
            .iter()
            .map(|s| s.expose().to_owned())
            .collect();
        assert_eq!(kept, ["a", "b", "c"]);
        assert_eq!(distinct(secrets(&["x"; 100])).len(), 1);
        assert!(distinct(Vec::new()).is_empty());
    }

    #[test]
    fn a_source_is_short_printable_text() {
        assert_eq!(parse_source(None).unwrap(), "report");
        assert_eq!(parse_source(Some(" ci log ")).unwrap(), "ci log");
        assert!(parse_source(Some("")).is_err());
        assert!(parse_source(Some("a\nb")).is_err());
        assert!(parse_source(Some("gist\u{202E}")).is_err());
        assert!(parse_source(Some(&"x".repeat(201))).is_err());
    }
}
