-- Passkeys (WebAuthn) of people for console sign-in: several per person,
-- named, each a discoverable credential. `passkey` is the credential as
-- webauthn-rs keeps it (JSON: its ID, public key and signature counter; no
-- secret); `credential_id` (base64url) finds it when a browser presents it.
CREATE TABLE passkeys (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    credential_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);
