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

-- A key is owned by one person or one team, and may wait for approval.
ALTER TABLE api_keys
    ALTER COLUMN owner_id DROP NOT NULL,
    ADD COLUMN team_id TEXT REFERENCES teams (id),
    -- Set while the key waits for an admin's approval.
    ADD COLUMN pending_since TIMESTAMP,
    ADD COLUMN approved_by TEXT,
    ADD COLUMN approved_at TIMESTAMP,
    ADD CONSTRAINT api_keys_one_owner CHECK ((owner_id IS NULL) <> (team_id IS NULL));
CREATE INDEX api_keys_team_id ON api_keys (team_id);
CREATE INDEX api_keys_pending_since ON api_keys (pending_since);

-- The change epochs (2026-12-02-000005) with the new columns named; and for
-- teams and memberships, which decide whether a team's key works and whose
-- keys a person reaches.
DROP TRIGGER api_keys_update_epoch ON api_keys;
CREATE TRIGGER api_keys_update_epoch BEFORE UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute,
    team_id, pending_since, approved_by, approved_at
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER teams_epoch BEFORE UPDATE OR DELETE ON teams
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER team_members_epoch BEFORE INSERT OR DELETE ON team_members
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
