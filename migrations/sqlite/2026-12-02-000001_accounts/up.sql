-- Console sessions: an opaque random token in a cookie, only its keyed hash
-- here (KEYGATE_SECRET_KEY keys it, so write access to the database alone
-- cannot mint a session). Shared by every keygate process on the database.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    -- The absolute end (created_at + KEYGATE_SESSION_MAX); the idle end is
    -- last_seen_at + KEYGATE_SESSION_IDLE, read at each request.
    expires_at TIMESTAMP NOT NULL,
    source_addr TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- One-time links to set a password: invitations and password resets. Only
-- the keyed hash of the link's token is stored; a link works once.
CREATE TABLE account_links (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    purpose TEXT NOT NULL CHECK (purpose IN ('invite', 'reset')),
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX account_links_user_id ON account_links (user_id);
