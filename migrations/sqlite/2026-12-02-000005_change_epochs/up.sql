-- Counters that move, in the same transaction, with every change to what
-- the warm token path keeps in memory (crate::client_auth::verified):
--   1: what a credential is made of (keys, people, roles, APIs);
--   2: the failure throttle (auth_throttle).
-- A server keeps a verified key's credential in memory and reads only these
-- two rows on each token request; another value of the first makes it read
-- the key afresh, of the second the throttle. So a revocation, rotation,
-- disabled owner, narrowed role or changed API committed by any process is
-- honoured by the very next request on every process, and so is a client
-- throttled by another process. Triggers, not the store's code, move them:
-- no write path can forget to.
CREATE TABLE change_epochs (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id IN (1, 2)),
    n INTEGER NOT NULL
);
INSERT INTO change_epochs (id, n) VALUES (1, 0), (2, 0);

-- Every column of api_keys except the last-use bookkeeping, which a token
-- request itself writes (at most once a minute per key). A new key needs
-- no trigger: nothing about it can be held in memory before it exists.
CREATE TRIGGER api_keys_update_epoch AFTER UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute
ON api_keys BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER api_keys_delete_epoch AFTER DELETE ON api_keys
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER users_update_epoch AFTER UPDATE ON users
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER users_delete_epoch AFTER DELETE ON users
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER roles_insert_epoch AFTER INSERT ON roles
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER roles_update_epoch AFTER UPDATE ON roles
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER roles_delete_epoch AFTER DELETE ON roles
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

CREATE TRIGGER apis_insert_epoch AFTER INSERT ON apis
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apis_update_epoch AFTER UPDATE ON apis
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER apis_delete_epoch AFTER DELETE ON apis
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 1; END;

-- Throttle counts only grow within their window or start a new one;
-- deleting ended windows (pruning) throttles nobody more.
CREATE TRIGGER auth_throttle_insert_epoch AFTER INSERT ON auth_throttle
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 2; END;
CREATE TRIGGER auth_throttle_update_epoch AFTER UPDATE ON auth_throttle
BEGIN UPDATE change_epochs SET n = n + 1 WHERE id = 2; END;
