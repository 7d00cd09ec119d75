//! Starts the real application on a random port with a fresh database, on
//! SQLite or PostgreSQL, and drives it over real HTTP, through keygate's
//! library (fixtures, on the test's clock) and the real CLI. One file per
//! topic:
//!
//! - `app`: the [`TestApp`] builder, its in-process servers, jobs and clock;
//! - `api`: the management API called with a bearer token;
//! - `database`: fresh databases cloned from a migrated template;
//! - `fixtures`: people, APIs, roles and keys, made by keygate's library;
//! - `cli`: the real `keygate` binary against the app's database;
//! - `oauth`: token, introspection and revocation requests, JWKS checks;
//! - `oidc`: a real OpenID provider and a browser that signs in through it;
//! - `otp`: TOTP codes computed from RFC 6238, as an authenticator app does;
//! - `jwt`: crafted and tampered tokens;
//! - `sessions`: console sign-in and requests as a browser;
//! - `rows`: what the database holds;
//! - `mail`: the SMTP sink, received messages and the outbox;
//! - `serve`, `proxy`: the real `keygate serve` process, a cuttable TCP proxy.

pub mod api;
pub mod app;
pub mod cli;
pub mod database;
pub mod fixtures;
pub mod jwt;
pub mod mail;
pub mod oauth;
pub mod oidc;
pub mod otp;
pub mod proxy;
pub mod rows;
pub mod serve;
pub mod sessions;

pub use app::{TestApp, spawn_app};
pub use cli::{CliOutput, assert_one_line_refusal};
pub use database::postgres_admin_url;
pub use fixtures::{Key, KeySpec};
pub use jwt::{at_jwt_header, foreign_key_pair, payload_of, sign_token, with_payload};
pub use mail::link_token;
pub use oauth::{assert_invalid_client, assert_oauth_error, client_from, wrong_checksum};
pub use sessions::Browser;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(engine: Engine)` once per engine, as tests
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Engine::Postgres).await
                }
            )*
        }
    };
}
