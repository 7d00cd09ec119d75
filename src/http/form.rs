//! The `application/x-www-form-urlencoded` body of the OAuth endpoints.

use std::collections::HashMap;

use crate::http::error::OAuthError;

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Parameters by name, each with every value it was given. Parameters sent
/// without a value count as omitted (RFC 6749 §3.1).
#[derive(Debug, Default)]
pub struct Form {
    params: HashMap<String, Vec<String>>,
}

impl Form {
    /// Refuses any other content type with `invalid_request`.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Self, OAuthError> {
        let media_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(str::trim)
            .unwrap_or_default();
        if !media_type.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
            return Err(OAuthError::InvalidRequest(format!(
                "the request body must be {FORM_CONTENT_TYPE}"
            )));
        }
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in form_urlencoded::parse(body) {
            if !value.is_empty() {
                params
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
            }
        }
        Ok(Self { params })
    }

    /// The form of an OAuth endpoint's request, checked for its content type.
    pub fn from_request(req: &actix_web::HttpRequest, body: &[u8]) -> Result<Self, OAuthError> {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Self::parse(content_type, body)
    }

    /// A parameter that may appear at most once (RFC 6749 §3.2).
    pub fn single(&self, name: &str) -> Result<Option<&str>, OAuthError> {
        match self.params.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([value]) => Ok(Some(value)),
            Some(_) => Err(OAuthError::InvalidRequest(format!(
                "parameter {name:?} is repeated"
            ))),
        }
    }

    /// A parameter that must appear exactly once.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.single(name)?
            .ok_or_else(|| OAuthError::InvalidRequest(format!("{name} is required")))
    }

    /// Every value of a parameter that may repeat (RFC 8707 `resource`).
    pub fn all(&self, name: &str) -> &[String] {
        self.params.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    /// Fails on the first repeated parameter among `names`.
    pub fn reject_repeats(&self, names: &[&str]) -> Result<(), OAuthError> {
        names
            .iter()
            .try_for_each(|name| self.single(name).map(|_| ()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_form_content_type_with_parameters() {
        let form = Form::parse(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            b"grant_type=client_credentials&scope=a+b&resource=x&resource=y&empty=",
        )
        .unwrap();
        assert_eq!(
            form.single("grant_type").unwrap(),
            Some("client_credentials")
        );
        assert_eq!(form.single("scope").unwrap(), Some("a b"));
        assert_eq!(form.all("resource"), ["x", "y"]);
        assert_eq!(form.single("empty").unwrap(), None);
        assert!(form.single("resource").is_err());
    }

    #[test]
    fn refuses_other_content_types() {
        for ct in [None, Some("application/json"), Some("text/plain")] {
            assert!(matches!(
                Form::parse(ct, b"a=b"),
                Err(OAuthError::InvalidRequest(_))
            ));
        }
    }

    proptest! {
        #[test]
        fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Form::parse(Some(FORM_CONTENT_TYPE), &body);
        }
    }
}
