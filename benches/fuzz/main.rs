//! Fuzzing of the server's parsers of what clients send: the OAuth form
//! body, the client credentials (HTTP Basic and `client_secret_post`), the
//! management API's JSON request bodies, scopes, audiences and durations.
//! Each target checks properties, not only the absence of panics; the
//! driver is `keygate-fuzz` (stable Rust, seed corpora plus mutation and
//! generators). The verifier's targets live in `crates/verifier/benches/fuzz.rs`.
//!
//! - `cargo bench --bench fuzz -- --seconds 180`: a few minutes, cases/s and
//!   outcome counts per target (docs/FUZZING.md);
//! - `cargo test --bench fuzz` (so `scripts/test`, which runs
//!   `cargo test --all-targets`): a short run with a fixed seed.
//!
//! A finding is printed as a byte string: fix the code and keep the input
//! as a regression test beside it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// What a property check says when it fails.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
}

mod mgmt_bodies;
mod oauth;
mod text_inputs;

use mgmt_bodies::*;
use oauth::*;
use text_inputs::*;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate::client_auth::presented::{AuthMethod, ClientCredentials};
use keygate::duration::HumanDuration;
use keygate::http::error::{AppError, OAuthError};
use keygate::http::form::Form;
use keygate::http::mgmt::{
    self, CreateApi, CreateKey, CreateUser, RevokeBody, RotateBody, UpdateUser,
};
use keygate::http::oauth::presented;
use keygate::scope::{Audience, ScopeSet};
use keygate::{text, users};
use keygate_fuzz::{Rng, Target, Verdict};
use serde::de::DeserializeOwned;

const FORM_TYPE: &str = "application/x-www-form-urlencoded";

fn main() -> std::process::ExitCode {
    keygate_fuzz::main("keygate", &targets())
}

fn targets() -> Vec<Target> {
    vec![
        oauth_form(),
        client_credentials(),
        mgmt_target::<CreateKey>(
            "mgmt_create_key",
            &["name", "description", "scopes", "audiences", "expires_in", "owner"],
            &[
                br#"{"name":"ci","description":"deploys","scopes":["read","write"],"audiences":["https://api.example.com"],"expires_in":"90d"}"#,
                br#"{"name":"x","owner":"bob@example.com"}"#,
                br#"{"name":"x","scopes":["read write"]}"#,
                br#"{"name":"x","expires_in":"0s","audiences":["urn:x#frag"]}"#,
            ],
            check_create_key,
        ),
        mgmt_target::<RotateBody>(
            "mgmt_rotate_key",
            &["grace"],
            &[br#"{"grace":"1h"}"#, br#"{"grace":"0"}"#, br#"{}"#],
            check_rotate,
        ),
        mgmt_target::<RevokeBody>(
            "mgmt_revoke_key",
            &["reason"],
            &[br#"{"reason":"leaked in a log"}"#, br#"{}"#],
            |_, _| Ok("parsed"),
        ),
        mgmt_target::<CreateApi>(
            "mgmt_create_api",
            &["identifier", "name", "scopes"],
            &[
                br#"{"identifier":"https://api.example.com","name":"API","scopes":["read","write"]}"#,
                br#"{"identifier":"not a uri","name":"x","scopes":["a,b"]}"#,
            ],
            check_create_api,
        ),
        mgmt_target::<CreateUser>(
            "mgmt_create_user",
            &["email", "name", "role"],
            &[
                br#"{"email":"Alice@Example.com","name":"Alice","role":"admin"}"#,
                br#"{"email":"bob@example.com"}"#,
            ],
            check_create_user,
        ),
        mgmt_target::<UpdateUser>(
            "mgmt_update_user",
            &["disabled", "can_create_keys", "role"],
            &[br#"{"disabled":true,"can_create_keys":false,"role":"member"}"#, br#"{}"#],
            |_, _| Ok("parsed"),
        ),
        scopes_and_audiences(),
        durations(),
    ]
}

/// `first line` and `rest` of an input: a header and a body.
fn split_line(input: &[u8]) -> (&[u8], &[u8]) {
    match input.iter().position(|&b| b == b'\n') {
        Some(at) => (&input[..at], &input[at + 1..]),
        None => (input, &[]),
    }
}

fn is_form_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .map(str::trim)
        .is_some_and(|t| t.eq_ignore_ascii_case(FORM_TYPE))
}
