//! The management API's JSON request bodies.

use super::*;

/// A management API body: parsed as its handler parses it, then checked as
/// its handler checks it before the store. A body that does not parse is a
/// 400 `invalid_request` saying so; one that fails a check a 422 with one of
/// the documented codes; `check` tests what was accepted.
pub(crate) fn mgmt_target<T: DeserializeOwned + 'static>(
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
pub(crate) fn generate_json_body(rng: &mut Rng, fields: &[&str]) -> Vec<u8> {
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

pub(crate) fn expect_invalid(error: &AppError, codes: &[&'static str]) -> Verdict {
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

pub(crate) fn one_scope_each(scopes: &ScopeSet) -> Result<(), String> {
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

pub(crate) fn check_create_key(body: CreateKey, _: &[u8]) -> Verdict {
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

pub(crate) fn check_rotate(body: RotateBody, _: &[u8]) -> Verdict {
    match body.grace() {
        Err(e) => expect_invalid(&e, &["invalid_duration"]),
        Ok(Some(d)) => in_range(d).map(|()| "grace"),
        Ok(None) => Ok("no_grace"),
    }
}

pub(crate) fn check_create_api(body: CreateApi, _: &[u8]) -> Verdict {
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
pub(crate) fn check_create_user(_: CreateUser, input: &[u8]) -> Verdict {
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

pub(crate) fn in_range(d: HumanDuration) -> Result<(), String> {
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
