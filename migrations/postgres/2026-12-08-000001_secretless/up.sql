-- Keys without a shared secret (INTERFACE.md "Keys without a shared
-- secret"): keys whose clients prove possession of a private key
-- (private_key_jwt, RFC 7523 §2.2), and federations that trust an external
-- issuer's JWTs for one key (RFC 8693 token exchange).

-- How a key's client authenticates: 'client_secret', 'private_key_jwt' or
-- 'federation'. A key of the last two has no secret: its secret_hash is ''
-- (which verifies nothing) and its secret_lookup NULL.
ALTER TABLE api_keys ADD COLUMN auth_method TEXT NOT NULL DEFAULT 'client_secret';
-- A private_key_jwt key's public keys: a JWKS (RFC 7517), several during a
-- roll-over. NULL for other keys.
ALTER TABLE api_keys ADD COLUMN public_keys TEXT;
-- Who last used the key when that is not the key's own client: for a
-- federated key, the external token's "iss sub".
ALTER TABLE api_keys ADD COLUMN last_used_by TEXT;

-- A change of how a key authenticates, or of its public keys, bites on the
-- very next request on every process: both move the credential epoch.
DROP TRIGGER api_keys_update_epoch ON api_keys;
CREATE TRIGGER api_keys_update_epoch BEFORE UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute,
    team_id, pending_since, approved_by, approved_at,
    auth_method, public_keys
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);

-- Client assertions' jti, each accepted once by every process until the
-- assertion expires; a job deletes the expired ones.
CREATE TABLE client_assertion_jtis (
    client_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_assertion_jtis_expires_at ON client_assertion_jtis (expires_at);

-- A trusted workload: one external issuer's tokens whose sub matches a
-- pattern (and whose aud and claims match) may be exchanged for access
-- tokens of one federated key.
CREATE TABLE federations (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    -- The federated key: owner, scopes, audiences, revocation as any key.
    key_id TEXT NOT NULL UNIQUE REFERENCES api_keys (id),
    issuer TEXT NOT NULL,
    -- `*` matches any run of characters; otherwise exact.
    subject_pattern TEXT NOT NULL,
    -- The aud the external token must hold.
    audience TEXT NOT NULL,
    -- Further claims the token must carry with these exact values: a JSON object of strings.
    claims TEXT NOT NULL DEFAULT '{}',
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
