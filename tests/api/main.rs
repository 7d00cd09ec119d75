//! Integration tests: the real application on a random port with a fresh
//! database each, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod accounts;
mod approval;
mod architecture;
mod audit_export;
mod browser;
mod cli;
mod console;
mod edge;
mod email;
mod envelope;
mod events;
mod exposed;
mod factors;
mod faults;
mod federation;
mod github_scanning;
mod guessing;
mod hardening;
mod introspect;
mod keys;
mod layout;
mod mgmt;
mod organisation;
mod private_key_jwt;
mod process;
mod shared_reads;
mod signing;
mod sso;
mod teams;
mod token;
mod transfer;
mod upgrade;
mod verifier;
mod webhooks;
