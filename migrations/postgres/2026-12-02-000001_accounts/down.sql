DROP TABLE account_links;
DROP TABLE sessions;
