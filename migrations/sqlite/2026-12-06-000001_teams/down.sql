-- Team keys have no person to fall back to: the down migration refuses to
-- run while any exists (the NOT NULL below fails) rather than lose them.
DROP TRIGGER team_members_delete_epoch;
DROP TRIGGER team_members_insert_epoch;
DROP TRIGGER teams_delete_epoch;
DROP TRIGGER teams_update_epoch;

CREATE TABLE key_issuance_kept AS SELECT * FROM key_issuance;
CREATE TABLE api_keys_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    owner_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    previous_secret_hash TEXT,
    previous_secret_expires_at TIMESTAMP,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    rotated_at TIMESTAMP,
    revoked_at TIMESTAMP,
    revoked_by TEXT,
    revoked_reason TEXT,
    secret_lookup TEXT,
    previous_secret_lookup TEXT,
    allowed_networks TEXT,
    max_tokens_per_minute INTEGER,
    last_used_from TEXT,
    last_used_user_agent TEXT
);
INSERT INTO api_keys_rebuilt SELECT
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, last_used_at, rotated_at, revoked_at, revoked_by,
    revoked_reason, secret_lookup, previous_secret_lookup, allowed_networks,
    max_tokens_per_minute, last_used_from, last_used_user_agent
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_rebuilt RENAME TO api_keys;
CREATE INDEX api_keys_owner_id ON api_keys (owner_id);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);
CREATE INDEX api_keys_secret_lookup ON api_keys (secret_lookup);
CREATE INDEX api_keys_previous_secret_lookup ON api_keys (previous_secret_lookup);
INSERT INTO key_issuance SELECT * FROM key_issuance_kept;
DROP TABLE key_issuance_kept;
CREATE TRIGGER api_keys_update_epoch AFTER UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute
ON api_keys BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_delete_epoch AFTER DELETE ON api_keys
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

ALTER TABLE apis DROP COLUMN approval_scopes;
DROP TABLE team_members;
DROP TABLE teams;
