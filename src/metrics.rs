//! Prometheus metrics (OpenMetrics text), per process.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::db::Pool;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `delivered`, `retried` (failed, tried again later) or `failed` (given up).
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub webhook: WebhookMetrics,
    pub tokens_issued: Counter,
    pub token_failures: Family<FailureLabels, Counter>,
    pub token_request_duration: Histogram,
    pub email_outbox_pending: Gauge,
    pub emails_sent: Counter,
    pub email_failures: Family<EmailFailureLabels, Counter>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailFailureLabels {
    /// `transient` (retried) or `permanent` (given up at once).
    pub kind: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let tokens_issued = Counter::default();
        let token_failures = Family::<FailureLabels, Counter>::default();
        // 50 µs .. ~3 s: the cached path is sub-millisecond, argon2 ~20 ms.
        let token_request_duration = Histogram::new(exponential_buckets(0.00005, 2.5, 13));
        let email_outbox_pending = Gauge::default();
        let emails_sent = Counter::default();
        let email_failures = Family::<EmailFailureLabels, Counter>::default();
        // prometheus-client appends `_total` to counters.
        registry.register(
            "keygate_tokens_issued",
            "Access tokens issued",
            tokens_issued.clone(),
        );
        registry.register(
            "keygate_token_failures",
            "Token requests refused, by reason",
            token_failures.clone(),
        );
        registry.register(
            "keygate_token_request_duration_seconds",
            "Time to answer a token request",
            token_request_duration.clone(),
        );
        registry.register(
            "keygate_email_outbox_pending",
            "Emails waiting in the outbox",
            email_outbox_pending.clone(),
        );
        registry.register(
            "keygate_emails_sent",
            "Emails the mail server accepted",
            emails_sent.clone(),
        );
        registry.register(
            "keygate_email_send_failures",
            "Failed email delivery attempts, by kind (transient: retried; permanent: given up)",
            email_failures.clone(),
        );
        let webhook = WebhookMetrics::default();
        registry.register(
            "keygate_webhook_deliveries",
            "Webhook delivery attempts, by outcome",
            webhook.deliveries.clone(),
        );
        registry.register(
            "keygate_webhook_pending",
            "Webhook deliveries waiting (for their first attempt or a retry)",
            webhook.pending.clone(),
        );
        registry.register(
            "keygate_webhook_oldest_pending_seconds",
            "Age of the oldest webhook delivery still waiting",
            webhook.oldest_pending_seconds.clone(),
        );
        Self {
            registry,
            webhook,
            tokens_issued,
            token_failures,
            token_request_duration,
            email_outbox_pending,
            emails_sent,
            email_failures,
        }
    }
}

/// The handles the email outbox worker updates, shared with the registry:
/// the worker holds these, not the whole set.
#[derive(Clone, Default)]
pub struct MailMetrics {
    pub outbox_pending: Gauge,
    pub sent: Counter,
    failures: Family<EmailFailureLabels, Counter>,
}

impl MailMetrics {
    pub fn count_failure(&self, kind: &str) {
        self.failures
            .get_or_create(&EmailFailureLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }
}

/// The handles the webhook worker updates, shared with the registry.
#[derive(Clone, Default)]
pub struct WebhookMetrics {
    deliveries: Family<OutcomeLabels, Counter>,
    pub pending: Gauge,
    pub oldest_pending_seconds: Gauge,
}

impl WebhookMetrics {
    pub fn count(&self, outcome: &str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

impl Metrics {
    pub fn mail(&self) -> MailMetrics {
        MailMetrics {
            outbox_pending: self.email_outbox_pending.clone(),
            sent: self.emails_sent.clone(),
            failures: self.email_failures.clone(),
        }
    }

    pub fn count_failure(&self, reason: &str) {
        self.token_failures
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// PostgreSQL: exports how many warm-path reads shared rounds answered
    /// and in how many rounds (`keygate_db_shared_reads_total`,
    /// `keygate_db_shared_read_rounds_total`), read from the pool at each
    /// scrape. Nothing on SQLite, or when the URL asks for TLS.
    pub fn count_shared_reads(&mut self, pool: &Pool) {
        if pool.shared_read_counts().is_some() {
            self.registry
                .register_collector(Box::new(SharedReads(pool.clone())));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The pool's shared-read counts, as two counters.
struct SharedReads(Pool);

impl std::fmt::Debug for SharedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedReads")
    }
}

impl Collector for SharedReads {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some((reads, rounds)) = self.0.shared_read_counts() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "keygate_db_shared_reads",
                "Warm-path reads answered by shared rounds (PostgreSQL)",
                reads,
            ),
            (
                "keygate_db_shared_read_rounds",
                "Rounds that answered them: reads per round is what sharing saves",
                rounds,
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}
