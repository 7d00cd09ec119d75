-- Access tokens revoked through POST /oauth/revoke (RFC 7009), by JWT ID.
-- A row is kept until the token's own expiry, then pruned.
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    client_id TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
