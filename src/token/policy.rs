//! What a token request may obtain: pure decisions over what the key holds
//! and what the request asks for, no I/O.

use crate::error::OAuthError;
use crate::scope::ScopeSet;

/// RFC 8707: the resource asked for, which the key must hold; else the key's
/// only audience; else the issuer when the key has none. The issuer itself
/// may always be asked for by a key without audiences.
pub fn choose_audience(
    asked: &[&str],
    held: &[String],
    issuer: &str,
) -> Result<String, OAuthError> {
    match (asked, held) {
        ([], []) => Ok(issuer.to_owned()),
        ([], [only]) => Ok(only.clone()),
        ([], _) => Err(OAuthError::InvalidTarget(
            "this key has several audiences: name one with the resource parameter".into(),
        )),
        ([one], []) if *one == issuer => Ok(issuer.to_owned()),
        ([one], held) if held.iter().any(|h| h == one) => Ok((*one).to_owned()),
        ([one], _) => Err(OAuthError::InvalidTarget(format!(
            "this key may not obtain tokens for {one:?}"
        ))),
        (_, _) => Err(OAuthError::InvalidTarget(
            "give at most one resource".into(),
        )),
    }
}

/// RFC 6749 §3.3: the scopes asked for, every one of which the key must
/// still hold; all it holds when none were asked for.
pub fn grant_scope(
    requested: Option<ScopeSet>,
    effective: &ScopeSet,
) -> Result<ScopeSet, OAuthError> {
    let Some(requested) = requested else {
        return Ok(effective.clone());
    };
    if let Some(missing) = requested.iter().find(|s| !effective.contains(s)) {
        return Err(OAuthError::InvalidScope(format!(
            "this key may not request scope {missing:?}"
        )));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "https://auth.example.com";
    const API: &str = "https://api.example.com";
    const OTHER: &str = "https://other.example.com";

    fn held(audiences: &[&str]) -> Vec<String> {
        audiences.iter().map(|a| (*a).to_owned()).collect()
    }

    fn target_error(result: Result<String, OAuthError>) -> String {
        match result {
            Err(OAuthError::InvalidTarget(why)) => why,
            other => panic!("expected invalid_target, got {other:?}"),
        }
    }

    #[test]
    fn without_a_resource_the_key_decides() {
        assert_eq!(choose_audience(&[], &[], ISSUER).unwrap(), ISSUER);
        assert_eq!(choose_audience(&[], &held(&[API]), ISSUER).unwrap(), API);
        target_error(choose_audience(&[], &held(&[API, OTHER]), ISSUER));
    }

    #[test]
    fn a_resource_must_be_held() {
        assert_eq!(
            choose_audience(&[OTHER], &held(&[API, OTHER]), ISSUER).unwrap(),
            OTHER
        );
        assert_eq!(choose_audience(&[ISSUER], &[], ISSUER).unwrap(), ISSUER);
        target_error(choose_audience(&[OTHER], &held(&[API]), ISSUER));
        target_error(choose_audience(&[API], &[], ISSUER));
        // A key with audiences cannot fall back to the issuer.
        target_error(choose_audience(&[ISSUER], &held(&[API]), ISSUER));
    }

    #[test]
    fn at_most_one_resource() {
        target_error(choose_audience(&[API, API], &held(&[API]), ISSUER));
        target_error(choose_audience(&[API, OTHER], &held(&[API, OTHER]), ISSUER));
    }

    #[test]
    fn scopes_asked_for_must_be_held() {
        let effective = ScopeSet::parse("read write").unwrap();
        assert_eq!(grant_scope(None, &effective).unwrap(), effective);
        let read = ScopeSet::parse("read").unwrap();
        assert_eq!(grant_scope(Some(read.clone()), &effective).unwrap(), read);
        assert!(matches!(
            grant_scope(ScopeSet::parse("read admin").ok(), &effective),
            Err(OAuthError::InvalidScope(why)) if why.contains("\"admin\"")
        ));
        assert!(matches!(
            grant_scope(ScopeSet::parse("read").ok(), &ScopeSet::default()),
            Err(OAuthError::InvalidScope(_))
        ));
    }
}
