DROP TABLE auth_throttle;
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE api_keys;
DROP TABLE apis;
DROP TABLE users;
DROP TABLE roles;
