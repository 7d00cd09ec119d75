-- Keys that belong to the organisation (INTERFACE.md "Teams, transfers and
-- approvals"): teams with members and a role bounding their keys' scopes; a
-- key owned by one person or one team; keys awaiting an admin's approval.

CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL REFERENCES roles (name),
    -- Where emails about the team's keys go; NULL: every enabled member.
    notify_email TEXT,
    description TEXT NOT NULL DEFAULT '',
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE team_members (
    team_id TEXT NOT NULL REFERENCES teams (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    added_at TIMESTAMP NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user_id ON team_members (user_id);

-- Scopes of an API that a non-admin's key may hold only once approved.
ALTER TABLE apis ADD COLUMN approval_scopes TEXT NOT NULL DEFAULT '';

-- api_keys: owner_id becomes nullable beside team_id (exactly one is set),
-- and a key may wait for approval (pending_since) or have been approved.
-- SQLite cannot drop a NOT NULL, so the table is rebuilt (its triggers and
-- indexes with it). The one table referring to it, key_issuance, loses its
-- rows to the cascade of the DROP; they are kept aside and put back.
CREATE TABLE key_issuance_kept AS SELECT * FROM key_issuance;

CREATE TABLE api_keys_rebuilt (
    id TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL UNIQUE,
    owner_id TEXT REFERENCES users (id),
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
    last_used_user_agent TEXT,
    team_id TEXT REFERENCES teams (id),
    -- Set while the key waits for an admin's approval.
    pending_since TIMESTAMP,
    approved_by TEXT,
    approved_at TIMESTAMP,
    CHECK ((owner_id IS NULL) <> (team_id IS NULL))
);
INSERT INTO api_keys_rebuilt (
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, last_used_at, rotated_at, revoked_at, revoked_by,
    revoked_reason, secret_lookup, previous_secret_lookup, allowed_networks,
    max_tokens_per_minute, last_used_from, last_used_user_agent
) SELECT
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, last_used_at, rotated_at, revoked_at, revoked_by,
    revoked_reason, secret_lookup, previous_secret_lookup, allowed_networks,
    max_tokens_per_minute, last_used_from, last_used_user_agent
FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_rebuilt RENAME TO api_keys;

CREATE INDEX api_keys_owner_id ON api_keys (owner_id);
CREATE INDEX api_keys_team_id ON api_keys (team_id);
CREATE INDEX api_keys_expires_at ON api_keys (expires_at);
CREATE INDEX api_keys_secret_lookup ON api_keys (secret_lookup);
CREATE INDEX api_keys_previous_secret_lookup ON api_keys (previous_secret_lookup);
CREATE INDEX api_keys_pending_since ON api_keys (pending_since);

INSERT INTO key_issuance SELECT * FROM key_issuance_kept;
DROP TABLE key_issuance_kept;

-- The change epochs (2026-12-02-000005) again for the rebuilt table, its new
-- columns named; and for teams and memberships, which decide whether a
-- team's key works and whose keys a person reaches.
CREATE TRIGGER api_keys_update_epoch AFTER UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute,
    team_id, pending_since, approved_by, approved_at
ON api_keys BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_delete_epoch AFTER DELETE ON api_keys
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER teams_update_epoch AFTER UPDATE ON teams
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER teams_delete_epoch AFTER DELETE ON teams
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER team_members_insert_epoch AFTER INSERT ON team_members
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER team_members_delete_epoch AFTER DELETE ON team_members
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
