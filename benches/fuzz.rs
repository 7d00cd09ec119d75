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

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keygate::client_auth::presented::AuthMethod;
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

/// What a property check says when it fails.
macro_rules! ensure {
    ($cond:expr, $($why:tt)+) => {
        if !$cond {
            return Err(format!($($why)+));
        }
    };
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

/// The parameters as the reference parser sees them, empty values dropped.
fn reference_params(body: &[u8]) -> Vec<(String, Vec<String>)> {
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in form_urlencoded::parse(body) {
        if value.is_empty() {
            continue;
        }
        match params.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value.into_owned()),
            None => params.push((name.into_owned(), vec![value.into_owned()])),
        }
    }
    params
}

/// The form agrees with the reference parser in every accessor.
fn form_matches(form: &Form, params: &[(String, Vec<String>)]) -> Result<(), String> {
    for (name, values) in params {
        ensure!(
            form.all(name) == values.as_slice(),
            "all({name:?}) is {:?}, expected {values:?}",
            form.all(name)
        );
        let single = form.single(name);
        match values.as_slice() {
            [one] => ensure!(
                matches!(single, Ok(Some(v)) if v == one),
                "single({name:?}) is {single:?}"
            ),
            _ => ensure!(
                matches!(single, Err(OAuthError::InvalidRequest(_))),
                "single({name:?}) of a repeated parameter is {single:?}"
            ),
        }
        ensure!(
            form.required(name).is_ok() == (values.len() == 1),
            "required({name:?}) disagrees with single"
        );
    }
    Ok(())
}

/// First line: the content type; the rest: the body.
fn oauth_form() -> Target {
    Target::new("oauth_form", |input| {
        let (content_type, body) = split_line(input);
        let content_type = String::from_utf8_lossy(content_type);
        let form = match Form::parse(Some(&content_type), body) {
            Err(OAuthError::InvalidRequest(_)) => {
                ensure!(
                    !is_form_type(&content_type),
                    "the form type {content_type:?} was refused"
                );
                return Ok("wrong_content_type");
            }
            Err(other) => return Err(format!("an error other than invalid_request: {other:?}")),
            Ok(form) => form,
        };
        ensure!(
            is_form_type(&content_type),
            "{content_type:?} was accepted as the form type"
        );
        let params = reference_params(body);
        form_matches(&form, &params)?;
        // What parsed re-encodes into a body that parses to the same form.
        let mut encoder = form_urlencoded::Serializer::new(String::new());
        for (name, values) in &params {
            for value in values {
                encoder.append_pair(name, value);
            }
        }
        let again = Form::parse(Some(FORM_TYPE), encoder.finish().as_bytes())
            .map_err(|e| format!("the re-encoded form was refused: {e:?}"))?;
        form_matches(&again, &params)?;
        Ok(if params.iter().any(|(_, v)| v.len() > 1) {
            "repeated"
        } else if params.is_empty() {
            "empty"
        } else {
            "parsed"
        })
    })
    .seeds([
        "application/x-www-form-urlencoded\ngrant_type=client_credentials&scope=read+write&resource=https%3A%2F%2Fapi.example.com",
        "Application/X-WWW-Form-Urlencoded; charset=UTF-8\ngrant_type=client_credentials&client_id=kgc_abc&client_secret=kgs_def&resource=a&resource=b&empty=",
        "application/json\n{\"grant_type\":\"client_credentials\"}",
        "application/x-www-form-urlencoded\ntoken=eyJhbGciOiJFUzI1NiJ9.e30.c2ln&token_type_hint=access_token",
    ])
    .dictionary([
        "&", "=", "+", "%", "%2", "%20", "%25", "%00", "%ff", "%C3%A9", "%E2%82", "grant_type",
        "client_id", "client_secret", "scope", "resource", "token", ";", " charset=utf-8",
        "application/x-www-form-urlencoded",
    ])
    .generator(generate_form)
}

fn generate_form(rng: &mut Rng) -> Vec<u8> {
    const NAMES: &[&str] = &[
        "grant_type",
        "scope",
        "resource",
        "client_id",
        "client_secret",
        "token",
        "",
        "a b",
        "%67rant_type",
    ];
    const VALUES: &[&str] = &[
        "client_credentials",
        "read write",
        "https://api.example.com",
        "kgc_0123",
        "kgs_secret",
        "",
        "%",
        "%zz",
        "%C3",
        "\u{e9}",
        "a=b",
        "+",
    ];
    let mut body = String::new();
    for i in 0..rng.below(6) {
        if i > 0 {
            body.push('&');
        }
        let name = rng.pick(NAMES).copied().unwrap_or_default();
        let value = rng.pick(VALUES).copied().unwrap_or_default();
        if rng.one_in(2) {
            body.extend(form_urlencoded::byte_serialize(name.as_bytes()));
            body.push('=');
            body.extend(form_urlencoded::byte_serialize(value.as_bytes()));
        } else {
            body.push_str(name);
            body.push('=');
            body.push_str(value);
        }
    }
    format!("{FORM_TYPE}\n{body}").into_bytes()
}

/// First line: the `Authorization` header (absent when empty); the rest: the
/// form body.
fn client_credentials() -> Target {
    Target::new("client_credentials", |input| {
        let (auth, body) = split_line(input);
        let mut headers = HeaderMap::new();
        if !auth.is_empty() {
            match HeaderValue::from_bytes(auth) {
                Ok(value) => {
                    headers.insert(AUTHORIZATION, value);
                }
                // Not a header a client can send; actix would refuse it first.
                Err(_) => return Ok("not_a_header"),
            }
        }
        let form = Form::parse(Some(FORM_TYPE), body).map_err(|e| format!("{e:?}"))?;
        let body_id = form.single("client_id");
        let body_secret = form.single("client_secret");
        match presented::extract(&headers, &form) {
            Ok(p) => match p.method {
                AuthMethod::Basic => {
                    ensure!(!headers.is_empty(), "Basic without a header");
                    ensure!(
                        matches!(body_secret, Ok(None)),
                        "Basic accepted beside client_secret in the body"
                    );
                    ensure!(
                        matches!(body_id, Ok(None))
                            || matches!(body_id, Ok(Some(id)) if id == p.client_id),
                        "Basic accepted beside a different client_id in the body"
                    );
                    // The credentials re-encoded (RFC 6749 §2.3.1) read back the same.
                    let enc =
                        |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                    let header = format!(
                        "Basic {}",
                        STANDARD.encode(format!(
                            "{}:{}",
                            enc(&p.client_id),
                            enc(p.secret.expose())
                        ))
                    );
                    let mut again = HeaderMap::new();
                    again.insert(
                        AUTHORIZATION,
                        HeaderValue::from_str(&header).map_err(|e| e.to_string())?,
                    );
                    let empty = Form::parse(Some(FORM_TYPE), b"").map_err(|e| format!("{e:?}"))?;
                    let back = presented::extract(&again, &empty)
                        .map_err(|e| format!("re-encoded Basic credentials refused: {e:?}"))?;
                    ensure!(
                        back.client_id == p.client_id && back.secret.expose() == p.secret.expose(),
                        "re-encoded Basic credentials read back differently"
                    );
                    Ok("basic")
                }
                AuthMethod::Post => {
                    ensure!(
                        headers.is_empty(),
                        "client_secret_post beside an Authorization header"
                    );
                    ensure!(
                        matches!(body_id, Ok(Some(id)) if id == p.client_id)
                            && matches!(body_secret, Ok(Some(s)) if s == p.secret.expose()),
                        "client_secret_post credentials differ from the body's"
                    );
                    Ok("post")
                }
            },
            Err(OAuthError::InvalidClient) => {
                ensure!(
                    !(headers.is_empty()
                        && matches!((&body_id, &body_secret), (Ok(Some(_)), Ok(Some(_))))),
                    "complete client_secret_post credentials refused as invalid_client"
                );
                Ok("invalid_client")
            }
            Err(OAuthError::InvalidRequest(_)) => Ok("invalid_request"),
            Err(other) => Err(format!("an error RFC 6749 §2.3.1 does not give: {other:?}")),
        }
    })
    .seeds([
        format!(
            "Basic {}\ngrant_type=client_credentials",
            STANDARD.encode("kgc%5Fabc:kgs%5Fs+x%2B")
        ),
        format!(
            "basic  {} \nclient_id=kgc_abc",
            STANDARD.encode("kgc_abc:kgs_def")
        ),
        "\nclient_id=kgc_abc&client_secret=kgs_def".to_owned(),
        format!(
            "Basic {}\nclient_secret=kgs_def",
            STANDARD.encode("kgc_abc:kgs_def")
        ),
        "Bearer abc\n".to_owned(),
        format!("Basic {}\n", STANDARD.encode("no-colon")),
    ])
    .dictionary([
        "Basic ",
        "basic ",
        ":",
        "%",
        "%3A",
        "%5F",
        "+",
        "=",
        "==",
        "\n",
        "client_id=",
        "client_secret=",
        "&",
    ])
    .generator(|rng| {
        const PARTS: &[&str] = &[
            "kgc_abc",
            "kgc%5Fabc",
            "kgs_s+x",
            "%",
            "%zz",
            "%C3",
            ":",
            "",
            "\u{e9}",
            "a%3Ab",
        ];
        let id = rng.pick(PARTS).copied().unwrap_or_default();
        let secret = rng.pick(PARTS).copied().unwrap_or_default();
        let mut raw = format!("{id}:{secret}").into_bytes();
        if rng.one_in(3) {
            raw.push(rng.byte());
        }
        let body = match rng.below(3) {
            0 => String::new(),
            1 => format!("client_id={id}"),
            _ => format!("client_id={id}&client_secret={secret}"),
        };
        format!("Basic {}\n{body}", STANDARD.encode(raw)).into_bytes()
    })
}

/// A management API body: parsed as its handler parses it, then checked as
/// its handler checks it before the store. A body that does not parse is a
/// 400 `invalid_request` saying so; one that fails a check a 422 with one of
/// the documented codes; `check` tests what was accepted.
fn mgmt_target<T: DeserializeOwned + 'static>(
    name: &'static str,
    fields: &'static [&'static str],
    seeds: &[&[u8]],
    check: fn(T, &[u8]) -> Verdict,
) -> Target {
    Target::new(name, move |input| match mgmt::parse_json::<T>(input) {
        Err(error) => {
            ensure!(
                error.status == StatusCode::BAD_REQUEST
                    && error.code == "invalid_request"
                    && error.message.starts_with("invalid JSON body: ")
                    && error.message.len() > "invalid JSON body: ".len(),
                "an unparsable body gave {error:?}"
            );
            Ok(
                if serde_json::from_slice::<serde_json::Value>(input).is_ok() {
                    "wrong_shape"
                } else {
                    "not_json"
                },
            )
        }
        Ok(body) => check(body, input),
    })
    .seeds(seeds.iter().copied())
    .dictionary([
        "\"name\":",
        "\"scopes\":",
        "\"audiences\":",
        "\"expires_in\":",
        "\"owner\":",
        "\"grace\":",
        "\"reason\":",
        "\"identifier\":",
        "\"email\":",
        "\"role\":",
        "\"disabled\":",
        "\"can_create_keys\":",
        "\"description\":",
        "null",
        "true",
        "[]",
        "{}",
        "\"\"",
        "\"0\"",
        "\"90d\"",
        "\"-1d\"",
        "\"99999999999d\"",
        "\"read write\"",
        "\"a,b\"",
        "\"https://x\"",
        "\"\\u0000\"",
        "\"\\ud800\"",
        "1e999",
        "-0",
        ",",
        ":",
    ])
    .generator(move |rng| generate_json_body(rng, fields))
    .generate_one_in(2)
}

/// An object of the body's own fields (each most of the time, now and then
/// an unknown one) with values of every JSON type.
fn generate_json_body(rng: &mut Rng, fields: &[&str]) -> Vec<u8> {
    const STRINGS: &[&str] = &[
        "",
        "0",
        "1h",
        "90d",
        "0s",
        "-1d",
        "1.5h",
        "99999999999d",
        "36500d",
        "read",
        "read write",
        "a,b",
        " e",
        "keygate:admin",
        "https://api.example.com",
        "urn:x#f",
        "not a uri",
        "a@b.example",
        "A@B.Example ",
        "\u{1b}[31m",
        "\u{e9}",
        " 1h ",
        "member",
        "admin",
    ];
    let string =
        |rng: &mut Rng| serde_json::Value::from(rng.pick(STRINGS).copied().unwrap_or_default());
    let mut members = Vec::new();
    for &name in fields.iter().chain(rng.one_in(10).then_some(&"unknown")) {
        if rng.one_in(3) {
            continue;
        }
        let value = match rng.below(12) {
            0..=5 => string(rng),
            6..=8 => serde_json::Value::Array((0..rng.below(4)).map(|_| string(rng)).collect()),
            9 => serde_json::Value::Bool(rng.one_in(2)),
            10 => serde_json::Value::Null,
            _ => serde_json::Value::from(-1),
        };
        members.push(format!("{}:{value}", serde_json::Value::from(name)));
    }
    format!("{{{}}}", members.join(",")).into_bytes()
}

fn expect_invalid(error: &AppError, codes: &[&'static str]) -> Verdict {
    ensure!(
        error.status == StatusCode::UNPROCESSABLE_ENTITY && !error.message.is_empty(),
        "a failed check gave {error:?}"
    );
    codes
        .iter()
        .find(|c| **c == error.code)
        .copied()
        .ok_or_else(|| format!("undocumented code {:?}", error.code))
}

fn one_scope_each(scopes: &ScopeSet) -> Result<(), String> {
    for scope in scopes.iter() {
        let parsed = ScopeSet::parse(scope).map_err(|e| format!("accepted scope refused: {e}"))?;
        ensure!(
            parsed.iter().eq([scope]),
            "accepted scope {scope:?} is not one scope"
        );
    }
    ensure!(
        ScopeSet::parse(&scopes.to_string()).as_ref() == Ok(scopes),
        "the accepted scopes do not round-trip"
    );
    Ok(())
}

fn check_create_key(body: CreateKey, _: &[u8]) -> Verdict {
    match body.check() {
        Err(e) => expect_invalid(
            &e,
            &["invalid_scope", "invalid_audience", "invalid_duration"],
        ),
        Ok(checked) => {
            one_scope_each(&checked.scopes)?;
            for audience in &checked.audiences {
                ensure!(
                    Audience::parse(audience.as_str()).as_ref() == Ok(audience),
                    "accepted audience {audience:?} does not re-parse"
                );
            }
            if let Some(d) = checked.expires_in {
                in_range(d)?;
            }
            Ok("accepted")
        }
    }
}

fn check_rotate(body: RotateBody, _: &[u8]) -> Verdict {
    match body.grace() {
        Err(e) => expect_invalid(&e, &["invalid_duration"]),
        Ok(Some(d)) => in_range(d).map(|()| "grace"),
        Ok(None) => Ok("no_grace"),
    }
}

fn check_create_api(body: CreateApi, _: &[u8]) -> Verdict {
    match body.check() {
        Err(e) => expect_invalid(&e, &["invalid_identifier", "invalid_scope"]),
        Ok((identifier, scopes)) => {
            ensure!(
                Audience::parse(identifier.as_str()).as_ref() == Ok(&identifier),
                "accepted identifier does not re-parse"
            );
            one_scope_each(&scopes)?;
            Ok("accepted")
        }
    }
}

/// `create_user` checks the email and the name before it opens a
/// transaction: the same checks, on what the body holds.
fn check_create_user(_: CreateUser, input: &[u8]) -> Verdict {
    let body: serde_json::Value =
        serde_json::from_slice(input).map_err(|e| format!("parsed, yet not JSON: {e}"))?;
    let email = body["email"].as_str().ok_or("parsed without an email")?;
    match users::normalize_email(email) {
        Ok(normal) => {
            ensure!(
                normal == normal.trim().to_lowercase(),
                "{normal:?} is not normalized"
            );
            ensure!(
                users::normalize_email(&normal).is_ok_and(|again| again == normal),
                "normalizing {normal:?} again changes it"
            );
        }
        Err(e) => return expect_invalid(&AppError::from(e), &["invalid_email"]),
    }
    let name = body["name"].as_str().unwrap_or_default();
    match text::refuse_control_characters("invalid_name", "user's name", name) {
        Ok(()) => {
            ensure!(
                !name.chars().any(char::is_control),
                "a control character passed"
            );
            Ok("accepted")
        }
        Err(e) => expect_invalid(&AppError::from(e), &["invalid_name"]),
    }
}

fn in_range(d: HumanDuration) -> Result<(), String> {
    ensure!(
        (1..=100 * 365 * 86_400).contains(&d.as_secs()),
        "accepted duration of {} s",
        d.as_secs()
    );
    ensure!(
        d.to_string().parse::<HumanDuration>() == Ok(d),
        "{d} does not round-trip"
    );
    Ok(())
}

/// The input as text: a scope list and an audience.
fn scopes_and_audiences() -> Target {
    Target::new("scope_and_audience", |input| {
        let Ok(text) = std::str::from_utf8(input) else {
            return Ok("not_utf8");
        };
        let scopes = match ScopeSet::parse(text) {
            Ok(scopes) => {
                one_scope_each(&scopes)?;
                for scope in text.split(' ').filter(|s| !s.is_empty()) {
                    ensure!(scopes.contains(scope), "{scope:?} was dropped");
                }
                "scopes"
            }
            Err(e) => {
                ensure!(!e.to_string().is_empty(), "an empty scope error");
                "bad_scopes"
            }
        };
        match Audience::parse(text) {
            Ok(audience) => {
                ensure!(audience.as_str() == text, "the audience was altered");
                ensure!(
                    !text.contains('#') && !text.contains(char::is_whitespace),
                    "accepted {text:?}"
                );
                Ok(if scopes == "scopes" {
                    "both"
                } else {
                    "audience"
                })
            }
            Err(message) => {
                ensure!(!message.is_empty(), "an empty audience error");
                Ok(scopes)
            }
        }
    })
    .seeds([
        "read write keygate:admin",
        "read,write",
        "https://api.example.com/v1?x=1",
        "urn:example:api",
        "https://a#b",
        " a  b ",
    ])
    .dictionary([
        " ", ",", "\"", "\\", "#", "://", "https", "urn:", "%", "\u{7f}", "\u{e9}",
    ])
}

/// The input as text: a duration, with and without `0` meaning none.
fn durations() -> Target {
    Target::new("duration", |input| {
        let Ok(text) = std::str::from_utf8(input) else {
            return Ok("not_utf8");
        };
        let parsed = text.parse::<HumanDuration>();
        if let Ok(d) = parsed {
            in_range(d)?;
        }
        match HumanDuration::parse_or_zero(text) {
            Ok(None) => ensure!(text.trim() == "0", "{text:?} read as none"),
            Ok(Some(d)) => ensure!(parsed == Ok(d), "parse_or_zero disagrees on {text:?}"),
            Err(e) => ensure!(parsed == Err(e), "parse_or_zero disagrees on {text:?}"),
        }
        Ok(match parsed {
            Ok(_) => "parsed",
            Err(_) => "refused",
        })
    })
    .seeds([
        "30s",
        "15m",
        "12h",
        "90d",
        "0",
        " 1h ",
        "36500d",
        "36501d",
        "999999999999s",
    ])
    .dictionary(["s", "m", "h", "d", "0", "9", "-", "+", " ", ".", "\u{663}"])
}
