//! Time at the storage boundary: the database holds naive UTC timestamps,
//! everything else `DateTime<Utc>`.

use chrono::{DateTime, NaiveDateTime, Utc};

pub fn from_db(naive: NaiveDateTime) -> DateTime<Utc> {
    naive.and_utc()
}

/// RFC 3339 with a `Z`, second precision: what JSON output and emails show.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Serde adapters writing stored naive UTC timestamps as RFC 3339.
pub mod naive_utc {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(at.and_utc()))
    }
}

pub mod naive_utc_opt {
    use chrono::NaiveDateTime;
    use serde::Serializer;

    pub fn serialize<S: Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&super::rfc3339(at.and_utc())),
            None => s.serialize_none(),
        }
    }
}
