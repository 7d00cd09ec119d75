//! The persistent outbox: emails are written in the transaction of the change
//! they report and sent afterwards, so none is lost to a crash, a restart or
//! a mail server that is down.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;

use super::event::Event;
use super::render::{
    self, AccountContext, AccountEmail, Actor, AdminNotice, EmailContext, PRODUCT,
};
use crate::db::schema::email_outbox;
use crate::db::{DbConnection, write_transaction};
use crate::error::{ErrorKind, FeatureError, StoreError, from_store_errors};
use crate::time::rfc3339;

/// Where an email stands; stored as its lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum OutboxStatus {
    /// Waiting for its next attempt.
    Pending,
    Sent,
    /// Given up: refused for good, or out of attempts.
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }
}

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for OutboxStatus
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        self.as_str().to_sql(out)
    }
}

#[derive(Insertable)]
#[diesel(table_name = email_outbox)]
struct NewEmail<'a> {
    id: &'a str,
    dedupe_key: &'a str,
    key_id: Option<&'a str>,
    event: &'a str,
    recipient: &'a str,
    subject: &'a str,
    body_text: &'a str,
    body_html: &'a str,
    status: OutboxStatus,
    attempts: i32,
    created_at: NaiveDateTime,
    next_attempt_at: NaiveDateTime,
}

/// A claimed row, as the worker sends it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_outbox)]
pub struct OutboxEmail {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: String,
    pub attempts: i32,
}

impl OutboxEmail {
    /// The same for every attempt, so a resend after a crash is recognisable.
    pub fn message_id(&self) -> String {
        format!("{}@keygate", self.id)
    }
}

/// The one email per key, event and recipient (a team's key has several;
/// a key is rotated and transferred many times: each is its own event).
fn dedupe_key(key_id: &str, event: Event, recipient: &str, row_id: &str) -> String {
    match event {
        Event::Rotated | Event::Transferred => format!("key:{key_id}:{}:{row_id}", event.as_str()),
        other => format!("key:{key_id}:{}:{recipient}", other.as_str()),
    }
}

/// The key an email reports on: its row id, its owner (the recipient), who
/// created it, and the public view the templates show.
pub struct AboutKey<'a, K> {
    pub id: &'a str,
    /// The address the email goes to.
    pub owner: &'a str,
    /// Why it goes there ("the owner of this API key").
    pub relation: &'a str,
    pub created_by: &'a str,
    pub view: &'a K,
}

/// Why an email could not be queued: its template failed (a bug) or the
/// database did. Either way the change it reports is rolled back.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

from_store_errors!(QueueError);

impl FeatureError for QueueError {
    fn code(&self) -> &'static str {
        match self {
            Self::Render(_) => "internal_error",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Render(_) => ErrorKind::Internal,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Renders `event` for the key's owner and queues it, unless that email was
/// queued already. Call it inside the transaction of the change it reports:
/// a template error then aborts the change. Returns whether a row was added.
pub fn enqueue_key_event<K: serde::Serialize>(
    conn: &mut DbConnection,
    event: Event,
    about: AboutKey<'_, K>,
    issuer: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let occurred_at = rfc3339(now);
    let AboutKey {
        id: key_id,
        owner: recipient,
        relation,
        created_by,
        view: key,
    } = about;
    let mail = render::render(
        event,
        &EmailContext {
            product: PRODUCT,
            issuer,
            key,
            actor: Actor::describe(actor, recipient, &render::this_host()),
            created_by: Actor::creator(created_by, recipient),
            occurred_at: &occurred_at,
            recipient,
            relation,
        },
    )?;
    // Time-ordered, so the worker sends a key's "created" before its "expires soon".
    let id = uuid::Uuid::now_v7().to_string();
    let dedupe = dedupe_key(key_id, event, recipient, &id);
    let row = NewEmail {
        id: &id,
        dedupe_key: &dedupe,
        key_id: Some(key_id),
        event: event.as_str(),
        recipient,
        subject: &mail.subject,
        body_text: &mail.text,
        body_html: &mail.html,
        status: OutboxStatus::Pending,
        attempts: 0,
        created_at: now.naive_utc(),
        next_attempt_at: now.naive_utc(),
    };
    let insert = diesel::insert_into(email_outbox::table)
        .values(&row)
        .on_conflict(email_outbox::dedupe_key)
        .do_nothing();
    let added = match conn {
        DbConnection::Sqlite(c) => insert.execute(c)?,
        DbConnection::Pg(c) => insert.execute(c)?,
    };
    Ok(added == 1)
}

/// Renders an account email (invitation, password reset) for `context`'s
/// recipient and queues it, once per link (`link_id`). Call it inside the
/// transaction that writes the link. The body holds the one-time link: the
/// worker blanks it once the email is sent or given up ([`mark_sent`],
/// [`mark_failed_attempt`]), so the link lives in the outbox only while it
/// waits to go out.
pub fn enqueue_account_email(
    conn: &mut DbConnection,
    email: AccountEmail,
    link_id: &str,
    context: &AccountContext<'_>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    let mail = render::render_account(email, context)?;
    let id = uuid::Uuid::now_v7().to_string();
    let dedupe = format!("account:{link_id}");
    let row = NewEmail {
        id: &id,
        dedupe_key: &dedupe,
        key_id: None,
        event: email.as_str(),
        recipient: context.recipient,
        subject: &mail.subject,
        body_text: &mail.text,
        body_html: &mail.html,
        status: OutboxStatus::Pending,
        attempts: 0,
        created_at: now.naive_utc(),
        next_attempt_at: now.naive_utc(),
    };
    diesel::insert_into(email_outbox::table)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

/// Renders an email to an admin about keygate itself and queues it, once
/// per notice, subject (`about`: what it reports on, such as an endpoint
/// and the moment it was switched off) and recipient. Call it inside the
/// transaction of the change it reports.
pub fn enqueue_notice(
    conn: &mut DbConnection,
    notice: AdminNotice,
    about: &str,
    recipient: &str,
    context: &impl serde::Serialize,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let mail = render::render_notice(notice, context)?;
    let id = uuid::Uuid::now_v7().to_string();
    let dedupe = format!("notice:{}:{about}:{recipient}", notice.as_str());
    let row = NewEmail {
        id: &id,
        dedupe_key: &dedupe,
        key_id: None,
        event: notice.as_str(),
        recipient,
        subject: &mail.subject,
        body_text: &mail.text,
        body_html: &mail.html,
        status: OutboxStatus::Pending,
        attempts: 0,
        created_at: now.naive_utc(),
        next_attempt_at: now.naive_utc(),
    };
    let insert = diesel::insert_into(email_outbox::table)
        .values(&row)
        .on_conflict(email_outbox::dedupe_key)
        .do_nothing();
    let added = match conn {
        DbConnection::Sqlite(c) => insert.execute(c)?,
        DbConnection::Pg(c) => insert.execute(c)?,
    };
    Ok(added == 1)
}

/// What replaces the body of a sent or abandoned account email.
const SCRUBBED: &str = "(removed once sent: it held a one-time link)";

/// Blanks the body of `id` if it is an account email: its link must not
/// outlive the sending in the database.
fn scrub_account_email(conn: &mut DbConnection, id: &str) -> QueryResult<()> {
    let events = [
        AccountEmail::Invitation.as_str(),
        AccountEmail::PasswordReset.as_str(),
    ];
    diesel::update(
        email_outbox::table
            .find(id)
            .filter(email_outbox::key_id.is_null())
            .filter(email_outbox::event.eq_any(events)),
    )
    .set((
        email_outbox::body_text.eq(SCRUBBED),
        email_outbox::body_html.eq(SCRUBBED),
    ))
    .execute(conn)
    .map(|_| ())
}

/// The ids of due, unleased pending emails, oldest first; an expression so
/// each engine can add its own locking clause.
macro_rules! due_ids {
    ($now:expr, $limit:expr) => {
        email_outbox::table
            .filter(email_outbox::status.eq(OutboxStatus::Pending))
            .filter(email_outbox::next_attempt_at.le($now))
            .filter(
                email_outbox::locked_until
                    .is_null()
                    .or(email_outbox::locked_until.le($now)),
            )
            .select(email_outbox::id)
            .order((email_outbox::next_attempt_at.asc(), email_outbox::id.asc()))
            .limit($limit)
    };
}

macro_rules! lease {
    ($conn:expr, $ids:expr, $until:expr) => {
        diesel::update(email_outbox::table.filter(email_outbox::id.eq_any($ids)))
            .set(email_outbox::locked_until.eq($until))
            .execute($conn)
    };
}

/// Takes up to `limit` due emails and leases them to the caller until
/// `lease_until`: another process skips them meanwhile. On PostgreSQL the
/// rows are picked with `FOR UPDATE SKIP LOCKED`, so concurrent workers take
/// disjoint sets without waiting; SQLite has one writer at a time anyway.
pub fn claim_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<OutboxEmail>> {
    let now = now.naive_utc();
    let until = lease_until.naive_utc();
    // Mostly nothing is due: a plain read spares SQLite a write lock a second.
    let any: Vec<String> = due_ids!(now, 1).load(conn)?;
    if any.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = match conn {
        DbConnection::Pg(pg) => pg.transaction(|pg| {
            let ids: Vec<String> = due_ids!(now, limit).for_update().skip_locked().load(pg)?;
            lease!(pg, &ids, until)?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
        DbConnection::Sqlite(_) => write_transaction(conn, |conn| {
            let ids: Vec<String> = due_ids!(now, limit).load(conn)?;
            lease!(conn, &ids, until)?;
            Ok::<_, diesel::result::Error>(ids)
        })?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    email_outbox::table
        .filter(email_outbox::id.eq_any(&ids))
        .order((email_outbox::next_attempt_at.asc(), email_outbox::id.asc()))
        .select(OutboxEmail::as_select())
        .load(conn)
}

/// Extends the caller's lease on `ids` to `until`, for those still pending:
/// a worker calls it while it sends, so its lease can be short.
pub fn renew(conn: &mut DbConnection, ids: &[String], until: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(
        email_outbox::table
            .filter(email_outbox::id.eq_any(ids))
            .filter(email_outbox::status.eq(OutboxStatus::Pending)),
    )
    .set(email_outbox::locked_until.eq(until.naive_utc()))
    .execute(conn)
    .map(|_| ())
}

/// Recorded right after the server accepted the message, so it is never
/// sent again.
pub fn mark_sent(conn: &mut DbConnection, id: &str, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(email_outbox::table.find(id))
        .set((
            email_outbox::status.eq(OutboxStatus::Sent),
            email_outbox::sent_at.eq(now.naive_utc()),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::locked_until.eq(None::<NaiveDateTime>),
            email_outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    scrub_account_email(conn, id)
}

/// A failed attempt: tried again at `retry_at`, or given up when `None`.
pub fn mark_failed_attempt(
    conn: &mut DbConnection,
    id: &str,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    let (status, next) = match retry_at {
        Some(at) => (OutboxStatus::Pending, at),
        None => (OutboxStatus::Failed, now),
    };
    diesel::update(email_outbox::table.find(id))
        .set((
            email_outbox::status.eq(status),
            email_outbox::next_attempt_at.eq(next.naive_utc()),
            email_outbox::attempts.eq(email_outbox::attempts + 1),
            email_outbox::locked_until.eq(None::<NaiveDateTime>),
            email_outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    if retry_at.is_none() {
        scrub_account_email(conn, id)?;
    }
    Ok(())
}

/// Gives leased emails back untried: due again at once, for any process.
pub fn release(conn: &mut DbConnection, ids: &[String]) -> QueryResult<()> {
    diesel::update(email_outbox::table.filter(email_outbox::id.eq_any(ids)))
        .set(email_outbox::locked_until.eq(None::<NaiveDateTime>))
        .execute(conn)
        .map(|_| ())
}

/// Emails not yet sent nor given up: the outbox depth.
pub fn pending_count(conn: &mut DbConnection) -> QueryResult<i64> {
    email_outbox::table
        .filter(email_outbox::status.eq(OutboxStatus::Pending))
        .count()
        .get_result(conn)
}
