//! Integration tests: the real application on a random port with a fresh
//! database each, on SQLite and PostgreSQL.

mod helpers;

mod email;
mod introspect;
mod keys;
mod mgmt;
mod process;
mod signing;
mod token;
mod verifier;
