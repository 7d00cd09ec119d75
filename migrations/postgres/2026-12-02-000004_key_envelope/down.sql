DROP TABLE key_issuance;
ALTER TABLE api_keys DROP COLUMN last_used_user_agent;
ALTER TABLE api_keys DROP COLUMN last_used_from;
ALTER TABLE api_keys DROP COLUMN max_tokens_per_minute;
ALTER TABLE api_keys DROP COLUMN allowed_networks;
