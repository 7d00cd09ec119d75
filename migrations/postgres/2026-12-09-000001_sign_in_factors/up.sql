-- How people sign in beyond a password (INTERFACE.md "Accounts and
-- sessions"): the identity provider's account each person signed in
-- through, and second factors (TOTP and recovery codes). Kept out of
-- `users`, whose every update moves the credential epoch.

-- The provider's account a person signed in through (single sign-on),
-- linked at the first such sign-in.
CREATE TABLE sso_identities (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL
);

-- A person's authenticator app (RFC 6238), at most one: its secret sealed
-- under the master key (AES-256-GCM, the user's id bound), counted only once
-- confirmed with a code. `last_step` is the newest 30-second step whose code
-- was accepted: a code is taken once, by whichever process sees it first.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users (id),
    secret_sealed TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    last_step BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL
);

-- Ten one-time recovery codes per person with a factor, stored as keyed
-- hashes; regenerating replaces them all.
CREATE TABLE recovery_codes (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_codes_user_id ON recovery_codes (user_id);

-- A session started by a password sign-in of someone KEYGATE_REQUIRE_MFA
-- covers who has no factor yet: it may only enrol one (or sign out).
ALTER TABLE sessions ADD COLUMN must_enrol BOOLEAN NOT NULL DEFAULT FALSE;
