-- A key's usage envelope (INTERFACE.md "Usage envelope of a key"): the
-- networks it may be used from (CIDRs separated by spaces; NULL: anywhere)
-- and the most tokens it may be issued per minute (NULL: no limit).
ALTER TABLE api_keys ADD COLUMN allowed_networks TEXT;
ALTER TABLE api_keys ADD COLUMN max_tokens_per_minute INTEGER;
-- Where the last token request came from, beside last_used_at.
ALTER TABLE api_keys ADD COLUMN last_used_from TEXT;
ALTER TABLE api_keys ADD COLUMN last_used_user_agent TEXT;

-- Tokens handed out per key in the current minute, shared by every server
-- process: each claims a share of the key's limit at a time
-- (crate::token::issuance), so a token request writes here only once per
-- share, not once per token.
CREATE TABLE key_issuance (
    key_id TEXT PRIMARY KEY NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    window_start BIGINT NOT NULL,
    claimed BIGINT NOT NULL
);
