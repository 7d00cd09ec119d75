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
    n BIGINT NOT NULL
);
INSERT INTO change_epochs (id, n) VALUES (1, 0), (2, 0);

-- The row lock the update takes orders the transactions that move one
-- counter. The triggers fire BEFORE each statement, so a transaction
-- takes that lock before the rows it changes and none can hold a changed
-- row while waiting for the counter: two such transactions cannot deadlock.
CREATE FUNCTION bump_change_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE change_epochs SET n = n + 1 WHERE id = TG_ARGV[0]::integer;
    RETURN NULL;
END
$$;

-- Every column of api_keys except the last-use bookkeeping, which a token
-- request itself writes (at most once a minute per key). A new key needs
-- no trigger: nothing about it can be held in memory before it exists.
CREATE TRIGGER api_keys_update_epoch BEFORE UPDATE OF
    id, client_id, owner_id, name, description, scopes, audiences, secret_hash,
    previous_secret_hash, previous_secret_expires_at, created_by, created_at,
    updated_at, expires_at, rotated_at, revoked_at, revoked_by, revoked_reason,
    secret_lookup, previous_secret_lookup, allowed_networks, max_tokens_per_minute
ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER api_keys_delete_epoch BEFORE DELETE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER users_epoch BEFORE UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER roles_epoch BEFORE INSERT OR UPDATE OR DELETE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);
CREATE TRIGGER apis_epoch BEFORE INSERT OR UPDATE OR DELETE ON apis
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(1);

-- Throttle counts only grow within their window or start a new one;
-- deleting ended windows (pruning) throttles nobody more.
CREATE TRIGGER auth_throttle_epoch BEFORE INSERT OR UPDATE ON auth_throttle
    FOR EACH STATEMENT EXECUTE FUNCTION bump_change_epoch(2);
