-- Console forms that issue a secret (create a key, rotate one), by the
-- one-time ID each rendered form carries: a form sent twice (a reload, the
-- back button, a double click) finds its first outcome here and is not
-- acted on again, so no second key or secret appears. Kept for a day.
CREATE TABLE console_forms (
    form_id TEXT PRIMARY KEY NOT NULL,
    -- The key the form created or rotated; NULL while it is being acted on.
    client_id TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX console_forms_created_at ON console_forms (created_at);
