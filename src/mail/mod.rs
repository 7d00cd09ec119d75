//! Emails to key owners and to people about their accounts: templates, the persistent outbox, its worker, the
//! expiry sweep, and the transport that sends them. The worker's round and
//! the sweep are jobs (`crate::jobs`) that run on timers or on demand.

mod event;
mod files;
pub mod outbox;
pub mod render;
pub mod transport;
pub mod worker;

use std::time::Duration;

pub use event::Event;
pub use outbox::{QueueError, enqueue_account_email, enqueue_key_event, enqueue_notice};
pub use render::{
    AccountContext, AccountEmail, AdminNotice, PRODUCT, TwoFactorNotice, WebhookNotice,
};
pub use transport::{MailTransport, Mailer, SendError, TransportError};
pub use worker::Delivery;

/// Timing of the outbox worker and the expiry sweep. Not read from the
/// environment: the defaults suit production, tests shorten them through
/// `Config::mail_tuning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MailTuning {
    /// How often an idle worker looks for due emails.
    pub poll_interval: Duration,
    /// How often keys are checked for entering the warning window or expiring.
    pub sweep_interval: Duration,
    /// The first retry's delay; each further one doubles, up to `retry_cap`.
    pub retry_base: Duration,
    pub retry_cap: Duration,
    /// Attempts before a transiently failing email is given up (about a day
    /// with the defaults).
    pub max_attempts: u32,
    /// How long a worker owns the emails it claimed without renewing them.
    /// A live worker renews its lease every third of it while it sends, so
    /// the lease can be short: after a crash (`kill -9`), the emails it held
    /// wait at most this long before another process, or the restarted one,
    /// takes them.
    pub lease: Duration,
    /// Bounds connecting and each SMTP command.
    pub smtp_timeout: Duration,
}

impl Default for MailTuning {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            sweep_interval: Duration::from_secs(15),
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(600),
            max_attempts: 150,
            lease: Duration::from_secs(15),
            smtp_timeout: Duration::from_secs(10),
        }
    }
}

/// A mail job's failure, logged and retried at the next run.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TaskError {
    message: String,
    /// The database could not be reached or used at that moment
    /// ([`StoreError::Unavailable`](crate::error::StoreError::Unavailable)).
    unavailable: bool,
}

impl TaskError {
    /// Whether the database was unavailable, rather than the work wrong:
    /// an outage, which the pool reports (`crate::db::reachability`).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl From<crate::error::StoreError> for TaskError {
    fn from(e: crate::error::StoreError) -> Self {
        Self {
            unavailable: matches!(e, crate::error::StoreError::Unavailable(_)),
            message: e.to_string(),
        }
    }
}

crate::error::from_store_errors!(TaskError);
