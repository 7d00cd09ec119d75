//! Finding the client credentials in a request (RFC 6749 §2.3.1, RFC 7523
//! §2.2): `client_secret_basic`, `client_secret_post` or `private_key_jwt`,
//! never two at once.

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::client_auth::assertion::JWT_BEARER;
use crate::client_auth::presented::{AuthMethod, ClientCredentials, Presented, PresentedAssertion};
use crate::http::error::OAuthError;
use crate::http::form::Form;
use crate::keys::PlainSecret;

/// Finds the client's credentials in the request. No credentials at all is
/// `invalid_client` (RFC 6749 §5.2); two methods at once `invalid_request`.
pub fn extract(headers: &HeaderMap, form: &Form) -> Result<ClientCredentials, OAuthError> {
    form.reject_repeats(&[
        "client_id",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
    ])?;
    let assertion_type = form.single("client_assertion_type")?;
    let assertion = form.single("client_assertion")?;
    if assertion_type.is_some() || assertion.is_some() {
        if headers.contains_key(AUTHORIZATION) || form.single("client_secret")?.is_some() {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method: a client assertion or a client secret, not both".into(),
            ));
        }
        return match (assertion_type, assertion) {
            (Some(JWT_BEARER), Some(assertion)) => {
                Ok(ClientCredentials::Assertion(PresentedAssertion {
                    client_id: form.single("client_id")?.map(str::to_owned),
                    assertion: assertion.to_owned(),
                }))
            }
            (Some(_), Some(_)) => Err(OAuthError::InvalidClient),
            _ => Err(OAuthError::InvalidRequest(
                "client_assertion and client_assertion_type go together".into(),
            )),
        };
    }
    extract_secret(headers, form).map(ClientCredentials::Secret)
}

fn extract_secret(headers: &HeaderMap, form: &Form) -> Result<Presented, OAuthError> {
    let body_id = form.single("client_id")?;
    let body_secret = form.single("client_secret")?;
    let basic = headers
        .get(AUTHORIZATION)
        .map(|value| parse_basic(value.as_bytes()));

    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::InvalidRequest(
            "use one client authentication method: HTTP Basic or client_secret in the body, not both".into(),
        )),
        (Some(Some((id, secret))), body_id, None) => {
            // Some clients repeat their ID in the body; allowed if it agrees.
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id in the body differs from the one in the Authorization header".into(),
                ));
            }
            Ok(Presented {
                client_id: id,
                secret: PlainSecret::from_presented(secret),
                method: AuthMethod::Basic,
            })
        }
        (Some(None), _, None) => Err(OAuthError::InvalidClient),
        (None, Some(id), Some(secret)) => Ok(Presented {
            client_id: id.to_owned(),
            secret: PlainSecret::from_presented(secret.to_owned()),
            method: AuthMethod::Post,
        }),
        (None, _, _) => Err(OAuthError::InvalidClient),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`; `None` when it is not
/// Basic or does not decode.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((form_decode(id)?, form_decode(secret)?))
}

/// RFC 6749 §2.3.1: both parts are form-urlencoded before base64. Clients such
/// as Node's openid-client encode even `_`, so decoding is not optional.
fn form_decode(text: &str) -> Option<String> {
    let plus_as_space = text.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use proptest::prelude::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(auth) = auth {
            map.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        }
        map
    }

    fn form(body: &str) -> Form {
        Form::parse(Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
    }

    fn basic(id: &str, secret: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
    }

    #[test]
    fn basic_credentials_are_percent_decoded() {
        let p =
            extract_secret(&headers(Some(&basic("kgc%5Fabc", "kgs%5Fs+x"))), &form("")).unwrap();
        assert_eq!(p.client_id, "kgc_abc");
        assert_eq!(p.secret.expose(), "kgs_s x");
        assert_eq!(p.method, AuthMethod::Basic);
    }

    #[test]
    fn post_credentials() {
        let p =
            extract_secret(&headers(None), &form("client_id=kgc_a&client_secret=kgs_b")).unwrap();
        assert_eq!(
            (p.client_id.as_str(), p.method),
            ("kgc_a", AuthMethod::Post)
        );
    }

    #[test]
    fn both_methods_is_invalid_request() {
        let err = extract_secret(
            &headers(Some(&basic("a", "b"))),
            &form("client_id=a&client_secret=b"),
        )
        .unwrap_err();
        assert!(matches!(err, OAuthError::InvalidRequest(_)));
    }

    #[test]
    fn no_or_broken_credentials_is_invalid_client() {
        for (auth, body) in [
            (None, ""),
            (None, "client_id=a"),
            (Some("Bearer abc"), ""),
            (Some("Basic !!!"), ""),
            (Some("Basic YWJj"), ""), // "abc": no colon
        ] {
            let err = extract_secret(&headers(auth), &form(body)).unwrap_err();
            assert!(
                matches!(err, OAuthError::InvalidClient),
                "{auth:?} {body:?}"
            );
        }
    }

    #[test]
    fn an_assertion_comes_alone_and_with_its_type() {
        let typed = format!("client_assertion_type={JWT_BEARER}&client_assertion=a.b.c");
        match extract(&headers(None), &form(&format!("{typed}&client_id=kgc_a"))).unwrap() {
            ClientCredentials::Assertion(a) => {
                assert_eq!(a.client_id.as_deref(), Some("kgc_a"));
                assert_eq!(a.assertion, "a.b.c");
            }
            ClientCredentials::Secret(_) => panic!("read as a secret"),
        }
        for (auth, body) in [
            (Some(basic("a", "b")), typed.clone()),
            (None, format!("{typed}&client_secret=s")),
            (None, "client_assertion=a.b.c".to_owned()),
            (None, format!("client_assertion_type={JWT_BEARER}")),
            (None, format!("{typed}&client_assertion=x.y.z")),
        ] {
            let err = extract(&headers(auth.as_deref()), &form(&body)).unwrap_err();
            assert!(matches!(err, OAuthError::InvalidRequest(_)), "{body}");
        }
        let other = "client_assertion_type=urn:other&client_assertion=a.b.c";
        assert!(matches!(
            extract(&headers(None), &form(other)).unwrap_err(),
            OAuthError::InvalidClient
        ));
    }

    proptest! {
        #[test]
        fn basic_round_trips(id in "[ -~]{1,30}", secret in "[ -~]{0,60}") {
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let p = extract_secret(&headers(Some(&basic(&enc(&id), &enc(&secret)))), &form("")).unwrap();
            prop_assert_eq!(p.client_id, id);
            prop_assert_eq!(p.secret.expose(), secret.as_str());
        }

        #[test]
        fn parse_basic_never_panics(value in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = parse_basic(&value);
        }
    }
}
