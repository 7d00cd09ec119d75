-- Events out (INTERFACE.md "Events out: webhooks and the audit export"):
-- endpoints admins register, and one delivery row per event and endpoint,
-- written in the transaction of the change it reports (a transactional
-- outbox, as email_outbox is for emails).

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- The event types it wants, space-separated; empty: every type, those
    -- added by later releases included.
    events TEXT NOT NULL DEFAULT '',
    -- The signing secret, sealed with a key derived from the master key
    -- (AES-256-GCM, the endpoint's ID as associated data): the database
    -- alone cannot forge a delivery.
    secret_sealed BYTEA NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    -- Why it was switched off, when keygate did it.
    disabled_reason TEXT,
    -- Since when every attempt has failed; NULL after any success.
    failing_since TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE webhook_deliveries (
    -- The webhook-id header: one per event and endpoint, the same on every retry.
    id TEXT PRIMARY KEY NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    -- Once-only events (a key's "expires soon") are queued once per endpoint.
    dedupe_key TEXT NOT NULL UNIQUE,
    -- The JSON body, fixed when the event happened; each attempt signs it anew.
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    locked_until TIMESTAMP,
    last_attempt_at TIMESTAMP,
    -- The receiver's HTTP status, if it answered.
    last_status INTEGER,
    last_error TEXT,
    delivered_at TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);
