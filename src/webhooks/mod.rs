//! Events out: endpoints admins register, signed deliveries per Standard
//! Webhooks 1.0, and the worker that makes them. An event is written to the
//! outbox (one row per endpoint that wants it) in the transaction of the
//! change it reports, so a crash, a restart or a receiver that is down loses
//! none; the worker delivers them afterwards, retrying on the contract's
//! schedule.

pub mod endpoint;
mod error;
mod health;
pub mod outbox;
pub mod secret;
pub mod worker;

use std::time::Duration;

pub use endpoint::{CreatedEndpoint, Endpoint, EndpointChange, NewEndpoint};
pub use error::WebhookError;
pub use outbox::send_test;
pub use outbox::{DeliveryView, recent, resend};
pub use secret::{SigningSecret, WebhookSealer};
pub use worker::Dispatcher;

/// Timing of the delivery worker. Not read from the environment: the
/// defaults are the contract's, tests shorten the poll through
/// `Config::webhook_tuning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookTuning {
    /// How often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// How long a receiver has to answer (connecting included).
    pub timeout: Duration,
    /// Deliveries in flight at once, per process.
    pub concurrency: usize,
}

impl Default for WebhookTuning {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            concurrency: 16,
        }
    }
}
