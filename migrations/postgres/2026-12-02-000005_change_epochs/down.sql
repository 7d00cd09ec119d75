DROP TRIGGER auth_throttle_epoch ON auth_throttle;
DROP TRIGGER apis_epoch ON apis;
DROP TRIGGER roles_epoch ON roles;
DROP TRIGGER users_epoch ON users;
DROP TRIGGER api_keys_delete_epoch ON api_keys;
DROP TRIGGER api_keys_update_epoch ON api_keys;
DROP FUNCTION bump_change_epoch();
DROP TABLE change_epochs;
