-- Emails to key owners, written in the same transaction as the change they
-- report and sent afterwards by the worker of any `serve` process.
CREATE TABLE email_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    -- One email per event: `key:<key id>:<event>` (rotations add the row id),
    -- so the expiry sweep of several processes enqueues each warning once.
    dedupe_key TEXT NOT NULL UNIQUE,
    key_id TEXT,
    event TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    -- pending, sent or failed (given up)
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    -- A worker's lease while it sends; another may take the row after it.
    locked_until TIMESTAMP,
    last_error TEXT,
    sent_at TIMESTAMP
);
CREATE INDEX email_outbox_due ON email_outbox (status, next_attempt_at);
CREATE INDEX email_outbox_key_event ON email_outbox (key_id, event);
