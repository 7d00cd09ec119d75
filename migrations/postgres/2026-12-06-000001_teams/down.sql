-- Team keys have no person to fall back to: the down migration refuses to
-- run while any exists (SET NOT NULL fails) rather than lose them.
DROP TRIGGER team_members_epoch ON team_members;
DROP TRIGGER teams_epoch ON teams;
DROP TRIGGER api_keys_update_epoch ON api_keys;
CREATE TRIGGER api_keys_update_epoch BEFORE UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
DROP INDEX api_keys_pending_since;
DROP INDEX api_keys_team_id;
ALTER TABLE api_keys
    DROP CONSTRAINT api_keys_one_owner,
    DROP COLUMN approved_at,
    DROP COLUMN approved_by,
    DROP COLUMN pending_since,
    DROP COLUMN team_id,
    ALTER COLUMN owner_id SET NOT NULL;
ALTER TABLE apis DROP COLUMN approval_scopes;
DROP TABLE team_members;
DROP TABLE teams;
