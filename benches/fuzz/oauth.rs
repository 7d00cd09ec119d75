//! The OAuth side: the form body and the client credentials.

use super::*;

/// The parameters as the reference parser sees them, empty values dropped.
pub(crate) fn reference_params(body: &[u8]) -> Vec<(String, Vec<String>)> {
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
pub(crate) fn form_matches(form: &Form, params: &[(String, Vec<String>)]) -> Result<(), String> {
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
pub(crate) fn oauth_form() -> Target {
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

pub(crate) fn generate_form(rng: &mut Rng) -> Vec<u8> {
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
pub(crate) fn client_credentials() -> Target {
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
            Ok(ClientCredentials::Assertion(_)) => {
                ensure!(
                    matches!(form.single("client_assertion"), Ok(Some(_))),
                    "an assertion accepted without client_assertion"
                );
                ensure!(
                    headers.is_empty() && matches!(body_secret, Ok(None)),
                    "an assertion accepted beside a secret"
                );
                Ok("assertion")
            }
            Ok(ClientCredentials::Secret(p)) => match p.method {
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
                    let ClientCredentials::Secret(back) = presented::extract(&again, &empty)
                        .map_err(|e| format!("re-encoded Basic credentials refused: {e:?}"))?
                    else {
                        return Err("re-encoded Basic credentials read as an assertion".into());
                    };
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
