DROP INDEX api_keys_previous_secret_lookup;
DROP INDEX api_keys_secret_lookup;
ALTER TABLE api_keys DROP COLUMN previous_secret_lookup;
ALTER TABLE api_keys DROP COLUMN secret_lookup;
