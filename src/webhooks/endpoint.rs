//! Webhook endpoints: registered by admins, each with its URL, the event
//! types it wants and a signing secret shown once. Every change is audited
//! in its transaction.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::WebhookError;
use super::secret::{SigningSecret, WebhookSealer};
use crate::audit::{self, Action};
use crate::db::schema::{webhook_deliveries, webhook_endpoints};
use crate::db::{DbConnection, write_transaction};
use crate::events::EventType;
use crate::time::from_db;

/// The longest URL an endpoint may have, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// The longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

/// What an admin asks for: the URL, the event types (`None`: every type,
/// those of later releases included) and a description.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub url: &'a str,
    pub events: Option<&'a [String]>,
    pub description: &'a str,
}

/// A change: each `Some` replaces that part. `events: Some(None)` goes back
/// to every type.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub events: Option<Option<Vec<String>>>,
    pub description: Option<String>,
    /// Switching an endpoint back on also forgets its failures.
    pub enabled: Option<bool>,
}

impl EndpointChange {
    fn is_empty(&self) -> bool {
        self.events.is_none() && self.description.is_none() && self.enabled.is_none()
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webhook_endpoints)]
struct EndpointRow {
    id: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failing_since: Option<NaiveDateTime>,
    created_by: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// An endpoint as the API, the CLI and the console show it; never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// The event types it receives.
    #[schema(example = json!(["key.created", "key.revoked"]))]
    pub events: Vec<String>,
    /// Whether it was registered for every type (future ones included).
    pub all_events: bool,
    /// False once switched off (by an admin, or by keygate after 5 days of
    /// failures); switched off, it receives nothing.
    pub enabled: bool,
    #[schema(required = true)]
    pub disabled_reason: Option<String>,
    /// Since when every delivery attempt has failed.
    #[serde(with = "crate::time::utc_opt")]
    #[schema(required = true, value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<DateTime<Utc>>,
    pub created_by: String,
    #[serde(with = "crate::time::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "crate::time::utc")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<EndpointRow> for Endpoint {
    fn from(row: EndpointRow) -> Self {
        let all_events = row.events.is_empty();
        let events = if all_events {
            EventType::ALL.map(|t| t.as_str().to_owned()).to_vec()
        } else {
            row.events.split(' ').map(str::to_owned).collect()
        };
        Self {
            id: row.id,
            url: row.url,
            description: row.description,
            events,
            all_events,
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failing_since: row.failing_since.map(from_db),
            created_by: row.created_by,
            created_at: from_db(row.created_at),
            updated_at: from_db(row.updated_at),
        }
    }
}

/// An endpoint just made, with its secret: the one time it is shown.
pub struct CreatedEndpoint {
    pub endpoint: Endpoint,
    pub secret: SigningSecret,
}

/// The URL as stored, or why it is refused: http(s) only, a host, no
/// credentials, at most [`MAX_URL_LEN`] bytes.
pub fn check_url(text: &str) -> Result<String, WebhookError> {
    let text = text.trim();
    if text.len() > MAX_URL_LEN {
        return Err(WebhookError::InvalidUrl(format!(
            "the URL may be at most {MAX_URL_LEN} bytes long"
        )));
    }
    let url = url::Url::parse(text)
        .map_err(|e| WebhookError::InvalidUrl(format!("not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(WebhookError::InvalidUrl(format!(
            "the URL must be http or https, not {}",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Never echo it: the credentials are a secret.
        return Err(WebhookError::InvalidUrl(
            "the URL may not hold credentials (user:password@); authenticate deliveries by \
             their signature"
                .into(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(WebhookError::InvalidUrl("the URL has no host".into()));
    }
    Ok(url.to_string())
}

/// The stored list: space-separated known types, in the contract's order;
/// `None` (every type) is stored empty.
pub fn check_events(events: Option<&[String]>) -> Result<String, WebhookError> {
    let Some(events) = events else {
        return Ok(String::new());
    };
    let mut wanted = Vec::new();
    for given in events.iter().flat_map(|e| e.split_whitespace()) {
        let kind = EventType::parse(given).ok_or_else(|| WebhookError::UnknownEventType {
            given: given.to_owned(),
            known: EventType::known(),
        })?;
        wanted.push(kind);
    }
    if wanted.is_empty() {
        return Err(WebhookError::UnknownEventType {
            given: String::new(),
            known: EventType::known(),
        });
    }
    let ordered: Vec<&str> = EventType::ALL
        .into_iter()
        .filter(|t| wanted.contains(t))
        .map(EventType::as_str)
        .collect();
    Ok(ordered.join(" "))
}

fn check_description(description: &str) -> Result<String, WebhookError> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(WebhookError::DescriptionLength {
            max: MAX_DESCRIPTION_LEN,
        });
    }
    crate::text::refuse_control_characters("invalid_description", "description", description)
        .map_err(WebhookError::InvalidDescription)?;
    Ok(description.to_owned())
}

fn record(
    conn: &mut DbConnection,
    (actor, action, id): (&str, Action, &str),
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    audit::record(
        conn,
        now,
        audit::Entry {
            actor,
            action,
            target: &format!("webhook:{id}"),
            source_addr: None,
            details,
        },
    )
}

/// Registers an endpoint; its secret is returned this once.
pub fn create(
    conn: &mut DbConnection,
    sealer: &WebhookSealer,
    new: NewEndpoint<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<CreatedEndpoint, WebhookError> {
    let url = check_url(new.url)?;
    let events = check_events(new.events)?;
    let description = check_description(new.description)?;
    let id = uuid::Uuid::now_v7().to_string();
    let secret = SigningSecret::generate();
    let sealed = sealer
        .seal(&id, &secret)
        .map_err(|_| WebhookError::Sealing)?;
    let endpoint = write_transaction(conn, |conn| {
        diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::id.eq(&id),
                webhook_endpoints::url.eq(&url),
                webhook_endpoints::description.eq(&description),
                webhook_endpoints::events.eq(&events),
                webhook_endpoints::secret_sealed.eq(&sealed),
                webhook_endpoints::enabled.eq(true),
                webhook_endpoints::created_by.eq(actor),
                webhook_endpoints::created_at.eq(now.naive_utc()),
                webhook_endpoints::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        let endpoint = find(conn, &id)?;
        record(
            conn,
            (actor, Action::WebhookCreated, &id),
            json!({ "url": url, "events": endpoint.events, "description": description }),
            now,
        )?;
        Ok::<_, WebhookError>(endpoint)
    })?;
    Ok(CreatedEndpoint { endpoint, secret })
}

/// Oldest first.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Endpoint>, WebhookError> {
    let rows: Vec<EndpointRow> = webhook_endpoints::table
        .order((
            webhook_endpoints::created_at.asc(),
            webhook_endpoints::id.asc(),
        ))
        .select(EndpointRow::as_select())
        .load(conn)?;
    Ok(rows.into_iter().map(Endpoint::from).collect())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Endpoint, WebhookError> {
    webhook_endpoints::table
        .find(id.trim())
        .select(EndpointRow::as_select())
        .first(conn)
        .optional()?
        .map(Endpoint::from)
        .ok_or_else(|| WebhookError::EndpointNotFound { id: id.to_owned() })
}

/// Changes the events, the description or whether it is on; audited with
/// what changed.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    change: &EndpointChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Endpoint, WebhookError> {
    if change.is_empty() {
        return Err(WebhookError::NothingToChange);
    }
    let events = match &change.events {
        None => None,
        Some(events) => Some(check_events(events.as_deref())?),
    };
    let description = change
        .description
        .as_deref()
        .map(check_description)
        .transpose()?;
    write_transaction(conn, |conn| {
        let before = find(conn, id)?;
        let target = webhook_endpoints::table.find(&before.id);
        if let Some(events) = &events {
            diesel::update(target)
                .set(webhook_endpoints::events.eq(events))
                .execute(conn)?;
        }
        if let Some(description) = &description {
            diesel::update(target)
                .set(webhook_endpoints::description.eq(description))
                .execute(conn)?;
        }
        if let Some(enabled) = change.enabled {
            diesel::update(target)
                .set((
                    webhook_endpoints::enabled.eq(enabled),
                    webhook_endpoints::disabled_reason.eq(None::<String>),
                    webhook_endpoints::failing_since.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
        }
        diesel::update(target)
            .set(webhook_endpoints::updated_at.eq(now.naive_utc()))
            .execute(conn)?;
        let after = find(conn, &before.id)?;
        record(
            conn,
            (actor, Action::WebhookUpdated, &after.id),
            json!({
                "events": { "from": before.events, "to": after.events },
                "description": { "from": before.description, "to": after.description },
                "enabled": { "from": before.enabled, "to": after.enabled },
            }),
            now,
        )?;
        Ok(after)
    })
}

/// Removes an endpoint and every delivery queued for it.
pub fn remove(
    conn: &mut DbConnection,
    id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Endpoint, WebhookError> {
    write_transaction(conn, |conn| {
        let endpoint = find(conn, id)?;
        diesel::delete(
            webhook_deliveries::table.filter(webhook_deliveries::endpoint_id.eq(&endpoint.id)),
        )
        .execute(conn)?;
        diesel::delete(webhook_endpoints::table.find(&endpoint.id)).execute(conn)?;
        record(
            conn,
            (actor, Action::WebhookRemoved, &endpoint.id),
            json!({ "url": endpoint.url }),
            now,
        )?;
        Ok(endpoint)
    })
}

/// An endpoint's URL and sealed secret, as the worker delivers to it.
pub(super) fn delivery_target(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<(String, Vec<u8>)>> {
    webhook_endpoints::table
        .find(id)
        .filter(webhook_endpoints::enabled.eq(true))
        .select((webhook_endpoints::url, webhook_endpoints::secret_sealed))
        .first(conn)
        .optional()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert_eq!(
            check_url(" https://hooks.example.com/keygate ").expect("valid"),
            "https://hooks.example.com/keygate"
        );
        assert!(check_url("http://127.0.0.1:8080/in?x=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "javascript:alert(1)",
            "https://user:pw@example.com/",
            "https://token@example.com/",
            "not a url",
            "http://[::1/",
        ] {
            let error = check_url(bad).expect_err(bad);
            assert_eq!(error.code(), "invalid_url", "{bad}");
            assert!(!error.to_string().contains("pw"), "{error}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(check_url(&long).is_err());
    }

    #[test]
    fn events_are_known_types_in_the_contracts_order() {
        assert_eq!(check_events(None).expect("all"), "");
        let given = [
            "key.revoked key.created".to_owned(),
            "user.created".to_owned(),
        ];
        assert_eq!(
            check_events(Some(&given)).expect("known"),
            "key.created key.revoked user.created"
        );
        let error = check_events(Some(&["key.made".to_owned()])).expect_err("unknown");
        assert!(
            error.to_string().contains("key.created, key.rotated"),
            "{error}"
        );
        assert!(check_events(Some(&[])).is_err());
    }

    use crate::error::FeatureError as _;
}
