//! The audit log: who did what to which object, and when. Never a secret.

pub mod export;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

use crate::db::DbConnection;
use crate::db::schema::audit_events;
use crate::text;
use crate::time::{self, DayEdge};

/// The actor recorded for changes made through the CLI.
pub const COMMAND_LINE: &str = "command line";
/// The actor recorded for changes keygate makes on its own.
pub const SYSTEM: &str = "keygate";

/// What happened; stored as its dotted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    KeyUpdated,
    KeyIssuanceLimited,
    /// Given to another person or team (from, to).
    KeyTransferred,
    KeyApproved,
    /// Refused by an admin, or undecided for 7 days: revoked.
    KeyDenied,
    TeamCreated,
    TeamUpdated,
    TeamMemberAdded,
    TeamMemberRemoved,
    UserCreated,
    UserDisabled,
    UserEnabled,
    UserUpdated,
    RoleSet,
    ApiCreated,
    ApiUpdated,
    SigningKeyCreated,
    SigningKeyRotated,
    ClientAuthFailed,
    TokenRevoked,
    AccountSignedIn,
    AccountSignInFailed,
    /// Too many failed sign-ins for one account across addresses: only
    /// browsers holding its device cookie may try until the window ends.
    AccountSignInLocked,
    AccountSignedOut,
    AccountInvited,
    PasswordResetRequested,
    PasswordSet,
    /// A second factor added (and confirmed) by its person.
    SecondFactorEnrolled,
    /// A second factor removed by its person.
    SecondFactorRemoved,
    /// A passkey given another name by its person.
    PasskeyRenamed,
    /// Every second factor and recovery code of a person removed
    /// (`users reset-mfa`).
    SecondFactorsReset,
    /// New recovery codes, replacing the old.
    RecoveryCodesGenerated,
    WebhookCreated,
    WebhookUpdated,
    WebhookRemoved,
    /// Switched off by keygate after 5 days of failed deliveries.
    WebhookDisabled,
    /// A test event or a resend queued by an admin.
    WebhookTested,
    WebhookResent,
    FederationCreated,
    /// Removed, its federated key revoked.
    FederationRemoved,
    /// A subject token that was not accepted for a federated key.
    FederationExchangeRefused,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyCreated => "key.created",
            Self::KeyRotated => "key.rotated",
            Self::KeyRevoked => "key.revoked",
            Self::KeyUpdated => "key.updated",
            Self::KeyIssuanceLimited => "key.issuance_limited",
            Self::KeyTransferred => "key.transferred",
            Self::KeyApproved => "key.approved",
            Self::KeyDenied => "key.denied",
            Self::TeamCreated => "team.created",
            Self::TeamUpdated => "team.updated",
            Self::TeamMemberAdded => "team.member_added",
            Self::TeamMemberRemoved => "team.member_removed",
            Self::UserCreated => "user.created",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserUpdated => "user.updated",
            Self::RoleSet => "role.set",
            Self::ApiCreated => "api.created",
            Self::ApiUpdated => "api.updated",
            Self::SigningKeyCreated => "signing_key.created",
            Self::SigningKeyRotated => "signing_key.rotated",
            Self::ClientAuthFailed => "client_auth.failed",
            Self::TokenRevoked => "token.revoked",
            Self::AccountSignedIn => "account.signed_in",
            Self::AccountSignInFailed => "account.sign_in_failed",
            Self::AccountSignInLocked => "account.sign_in_locked",
            Self::AccountSignedOut => "account.signed_out",
            Self::AccountInvited => "account.invited",
            Self::PasswordResetRequested => "account.password_reset_requested",
            Self::PasswordSet => "account.password_set",
            Self::SecondFactorEnrolled => "account.second_factor_enrolled",
            Self::SecondFactorRemoved => "account.second_factor_removed",
            Self::PasskeyRenamed => "account.passkey_renamed",
            Self::SecondFactorsReset => "account.second_factors_reset",
            Self::RecoveryCodesGenerated => "account.recovery_codes_generated",
            Self::WebhookCreated => "webhook.created",
            Self::WebhookUpdated => "webhook.updated",
            Self::WebhookRemoved => "webhook.removed",
            Self::WebhookDisabled => "webhook.disabled",
            Self::WebhookTested => "webhook.tested",
            Self::WebhookResent => "webhook.resent",
            Self::FederationCreated => "federation.created",
            Self::FederationRemoved => "federation.removed",
            Self::FederationExchangeRefused => "federation.exchange_refused",
        }
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
struct NewAuditEvent<'a> {
    id: String,
    occurred_at: NaiveDateTime,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    source_addr: Option<&'a str>,
    details: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub id: String,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: NaiveDateTime,
    /// Who acted: a person's email, "command line" or "keygate".
    pub actor: String,
    /// What happened, such as `key.created`.
    #[schema(example = "key.created")]
    pub action: String,
    /// What it happened to: a client ID, an email, an API identifier.
    pub target: String,
    #[schema(required = true)]
    pub source_addr: Option<String>,
    /// What else is worth knowing, by action (a reason, the scopes...).
    /// Stored as JSON text; shown as the object it holds.
    #[serde(serialize_with = "details_object")]
    #[schema(value_type = Object)]
    pub details: String,
}

/// One event to record: who acted, what they did, on what, from where.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: Action,
    pub target: &'a str,
    /// The client's address, for events a request over the network caused.
    pub source_addr: Option<&'a str>,
    /// A JSON object of what else is worth knowing; never a secret.
    pub details: serde_json::Value,
}

/// The stored JSON text as a JSON object. Every row holds one, written by
/// [`record`]; anything else (a hand-edited row) shows as `{"text": ...}`.
fn details_object<S: Serializer>(details: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(details) {
        Ok(object @ serde_json::Value::Object(_)) => object.serialize(s),
        _ => serde_json::json!({ "text": details }).serialize(s),
    }
}

/// Appends one event. Call it inside the transaction of the change it records.
/// Any field that could hold a client secret (a client that sent its secret
/// as its ID, a secret pasted into a name) is stored as a redaction marker.
pub fn record(conn: &mut DbConnection, now: DateTime<Utc>, entry: Entry<'_>) -> QueryResult<()> {
    let source_addr = entry.source_addr.map(text::redact_secret);
    diesel::insert_into(audit_events::table)
        .values(NewAuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: now.naive_utc(),
            actor: &text::redact_secret(entry.actor),
            action: entry.action.as_str(),
            target: &text::redact_secret(entry.target),
            source_addr: source_addr.as_deref(),
            details: text::redact_json(entry.details).to_string(),
        })
        .execute(conn)
        .map(|_| ())
}

/// Which events to list: each `Some` narrows the list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub actor: Option<String>,
    /// What the event happened to: a client ID, an email, an API.
    pub target: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// The filter with `since` and `until` as a list request gives them
    /// (absent or blank: no bound), each a `YYYY-MM-DD` day in UTC or an
    /// RFC 3339 time. Anything else is refused with a message for the
    /// caller: a filter that cannot be read never lists everything.
    pub fn with_period(self, since: Option<&str>, until: Option<&str>) -> Result<Self, String> {
        let bound = |name: &str, text: Option<&str>, edge| match text.map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) => time::parse_bound(text, edge).map(Some).ok_or_else(|| {
                format!("{name}: {text:?} is not a date like 2026-12-01 or an RFC 3339 time")
            }),
        };
        Ok(Self {
            since: bound("since", since, DayEdge::Start)?,
            until: bound("until", until, DayEdge::End)?,
            ..self
        })
    }
}

/// Newest first, filtered.
pub fn list_filtered(
    conn: &mut DbConnection,
    filter: &EventFilter,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let mut query = audit_events::table
        .select(AuditEvent::as_select())
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(limit)
        .offset(offset)
        .into_boxed();
    if let Some(actor) = &filter.actor {
        query = query.filter(audit_events::actor.eq(actor.clone()));
    }
    if let Some(target) = &filter.target {
        query = query.filter(audit_events::target.eq(target.clone()));
    }
    if let Some(action) = &filter.action {
        query = query.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(audit_events::occurred_at.ge(since.naive_utc()));
    }
    if let Some(until) = filter.until {
        query = query.filter(audit_events::occurred_at.le(until.naive_utc()));
    }
    query.load(conn)
}

/// Every action the log holds, for a filter's choices.
pub fn recorded_actions(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    audit_events::table
        .select(audit_events::action)
        .distinct()
        .order(audit_events::action.asc())
        .load(conn)
}

/// Newest first.
pub fn list_events(
    conn: &mut DbConnection,
    target: Option<&str>,
    limit: i64,
    offset: i64,
) -> QueryResult<Vec<AuditEvent>> {
    let mut query = audit_events::table
        .select(AuditEvent::as_select())
        .order((audit_events::occurred_at.desc(), audit_events::id.desc()))
        .limit(limit)
        .offset(offset)
        .into_boxed();
    if let Some(target) = target {
        query = query.filter(audit_events::target.eq(target.to_owned()));
    }
    query.load(conn)
}
