ALTER TABLE sessions DROP COLUMN must_enrol;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
DROP TABLE sso_identities;
