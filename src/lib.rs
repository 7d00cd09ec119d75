//! keygate: a self-hosted OAuth 2.0 authorization server for machine clients.
//! API keys in, short-lived RFC 9068 JWT access tokens out.
#![forbid(unsafe_code)]

pub mod access_token;
pub mod accounts;
pub mod app;
pub mod argon2id;
pub mod audit;
pub mod cli;
pub mod client_auth;
pub mod csv;
pub mod db;
pub mod duration;
pub mod error;
pub mod events;
pub mod exposure;
pub mod federation;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod random;
pub mod resource_servers;
pub mod scope;
pub mod signing;
pub mod state;
pub mod teams;
pub mod text;
pub mod time;
pub mod token;
pub mod users;
pub mod webhooks;

pub use app::{Application, Background, Config, StartOptions};
