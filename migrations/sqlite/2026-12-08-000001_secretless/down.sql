DROP TABLE federations;
DROP TABLE client_assertion_jtis;
DROP TRIGGER api_keys_update_epoch;
CREATE TRIGGER api_keys_update_epoch AFTER UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute,
    team_id, pending_since, approved_by, approved_at
ON api_keys BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
ALTER TABLE api_keys DROP COLUMN last_used_by;
ALTER TABLE api_keys DROP COLUMN public_keys;
ALTER TABLE api_keys DROP COLUMN auth_method;
