-- A keyed, non-reversible tag of each secret (HMAC under KEYGATE_SECRET_KEY),
-- so a reported secret finds its key without a scan (`crate::exposure`).
-- Keys created before this migration have none and cannot be found by a report.
ALTER TABLE api_keys ADD COLUMN secret_lookup TEXT;
ALTER TABLE api_keys ADD COLUMN previous_secret_lookup TEXT;
CREATE INDEX api_keys_secret_lookup ON api_keys (secret_lookup);
CREATE INDEX api_keys_previous_secret_lookup ON api_keys (previous_secret_lookup);
