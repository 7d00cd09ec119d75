//! CSRF tokens for the forms a person fills in before they have a session
//! (sign in, forgot password, set password): a random token in an `HttpOnly`
//! cookie that the form repeats (the double-submit pattern). Another site can
//! make a browser post a form here, but it can neither read nor set that
//! cookie, so it cannot repeat it. Signed-in forms use the session's own
//! CSRF token instead.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::random;

const TOKEN_BYTES: usize = 32;

/// The cookie's name: with the `__Host-` prefix (so no other host can set
/// it) whenever it can be `Secure`, that is under an https issuer.
pub fn cookie_name(issuer: &str) -> &'static str {
    if issuer.starts_with("https://") {
        "__Host-keygate-csrf"
    } else {
        "keygate-csrf"
    }
}

fn well_formed(token: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(token)
        .is_ok_and(|bytes| bytes.len() == TOKEN_BYTES)
}

/// The token for a form, and the cookie to set when the browser has none yet.
pub fn pre_session(req: &HttpRequest, issuer: &str) -> (String, Option<Cookie<'static>>) {
    let name = cookie_name(issuer);
    if let Some(existing) = req.cookie(name)
        && well_formed(existing.value())
    {
        return (existing.value().to_owned(), None);
    }
    let mut bytes = [0u8; TOKEN_BYTES];
    random::fill(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let cookie = Cookie::build(name, token.clone())
        .path("/")
        .http_only(true)
        .secure(issuer.starts_with("https://"))
        .same_site(SameSite::Strict)
        .finish();
    (token, Some(cookie))
}

/// Whether a form's token repeats the browser's cookie.
pub fn pre_session_matches(req: &HttpRequest, issuer: &str, presented: &str) -> bool {
    let Some(cookie) = req.cookie(cookie_name(issuer)) else {
        return false;
    };
    well_formed(cookie.value()) && bool::from(cookie.value().as_bytes().ct_eq(presented.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn a_new_browser_gets_a_cookie_and_the_form_repeats_it() {
        let req = TestRequest::default().to_http_request();
        let (token, cookie) = pre_session(&req, "https://id.example");
        let cookie = cookie.unwrap();
        assert_eq!(cookie.name(), "__Host-keygate-csrf");
        assert_eq!(cookie.value(), token);
        assert_eq!(cookie.secure(), Some(true));
        assert_eq!(cookie.http_only(), Some(true));

        let back = TestRequest::default()
            .cookie(cookie.clone())
            .to_http_request();
        assert!(pre_session_matches(&back, "https://id.example", &token));
        assert!(!pre_session_matches(&back, "https://id.example", "forged"));
        // The same browser keeps its token: several open forms all work.
        assert_eq!(pre_session(&back, "https://id.example"), (token, None));
    }

    #[test]
    fn no_cookie_means_no_match() {
        let req = TestRequest::default().to_http_request();
        assert!(!pre_session_matches(&req, "http://127.0.0.1:8080", ""));
        assert_eq!(cookie_name("http://127.0.0.1:8080"), "keygate-csrf");
    }
}
