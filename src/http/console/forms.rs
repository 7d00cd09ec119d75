//! One-time form IDs for the console's forms that hand out a secret (create
//! a key, rotate one, add a webhook endpoint): the first submission claims
//! its ID, so the same form sent again (a reload of the secret page re-posts
//! it, the back button, a double click) is recognised and sends the browser
//! to the key (or endpoint) instead of creating another one or another
//! secret. Rows live a day.

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;

use crate::db::schema::console_forms;
use crate::db::{DbConnection, is_unique_violation};
use crate::http::error::AppError;

const KEPT_FOR: Duration = Duration::days(1);

/// A fresh form ID for a rendered form.
pub fn new_id() -> String {
    crate::random::alphanumeric(32)
}

/// What claiming a form ID found.
pub enum Claim {
    /// First use: go ahead, then [`record`] the outcome.
    Fresh,
    /// Sent before; the key (or endpoint) it acted on, once known.
    Seen(Option<String>),
}

/// Claims `form_id` for this submission, dropping claims older than a day.
pub fn claim(
    conn: &mut DbConnection,
    form_id: &str,
    now: DateTime<Utc>,
) -> Result<Claim, AppError> {
    if form_id.len() != 32 || !form_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(AppError::bad_request(
            "this form is incomplete: reload the page and try again",
        ));
    }
    diesel::delete(
        console_forms::table.filter(console_forms::created_at.lt((now - KEPT_FOR).naive_utc())),
    )
    .execute(conn)?;
    // Outside any transaction, so a conflict aborts nothing else.
    let inserted = diesel::insert_into(console_forms::table)
        .values((
            console_forms::form_id.eq(form_id),
            console_forms::created_at.eq(now.naive_utc()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => return Ok(Claim::Fresh),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let client_id = console_forms::table
        .find(form_id)
        .select(console_forms::client_id)
        .first::<Option<String>>(conn)
        .optional()?
        .flatten();
    Ok(Claim::Seen(client_id))
}

/// The key's client ID (or the endpoint's ID) a claimed form acted on.
pub fn record(conn: &mut DbConnection, form_id: &str, acted_on: &str) -> Result<(), AppError> {
    diesel::update(console_forms::table.find(form_id))
        .set(console_forms::client_id.eq(acted_on))
        .execute(conn)?;
    Ok(())
}

/// Frees a claim whose form failed (bad input), so it can be sent again.
pub fn release(conn: &mut DbConnection, form_id: &str) -> Result<(), AppError> {
    diesel::delete(console_forms::table.find(form_id)).execute(conn)?;
    Ok(())
}
