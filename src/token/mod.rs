//! What a token request may obtain: pure decisions over what the key holds
//! and what the request asks for, no I/O.

use crate::error::{ErrorKind, FeatureError};
use crate::resource_servers::ApiScopes;
use crate::scope::{self, ScopeSet};

/// Why a key cannot have the token it asked for.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// A scope the key does not hold, or that is not its audience's.
    #[error("{0}")]
    InvalidScope(String),
    /// A resource the key may not target, or none or several when one is needed.
    #[error("{0}")]
    InvalidTarget(String),
}

impl FeatureError for GrantError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
        }
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Malformed
    }
}

/// RFC 8707: the resource asked for, which the key must hold; else the key's
/// only audience; else the issuer when the key has none. The issuer itself
/// may be asked for by a key without audiences, and by any key holding
/// keygate's own scopes (they belong to the issuer).
pub fn choose_audience(
    asked: &[&str],
    held: &[String],
    holds_own_scopes: bool,
    issuer: &str,
) -> Result<String, GrantError> {
    match (asked, held) {
        ([], []) => Ok(issuer.to_owned()),
        ([], [only]) => Ok(only.clone()),
        ([], _) => Err(GrantError::InvalidTarget(
            "this key has several audiences: name one with the resource parameter".into(),
        )),
        ([one], held) if *one == issuer && (held.is_empty() || holds_own_scopes) => {
            Ok(issuer.to_owned())
        }
        ([one], held) if held.iter().any(|h| h == one) => Ok((*one).to_owned()),
        ([one], _) => Err(GrantError::InvalidTarget(format!(
            "this key may not obtain tokens for {one:?}"
        ))),
        (_, _) => Err(GrantError::InvalidTarget(
            "give at most one resource".into(),
        )),
    }
}

/// The scopes a token for `audience` may carry at all: keygate's own for the
/// issuer, the API's registered scopes for an API (none for an API that is
/// no longer registered).
pub fn audience_scopes(audience: &str, issuer: &str, apis: &ApiScopes) -> ScopeSet {
    if audience == issuer {
        scope::BUILTIN_SCOPES.into_iter().collect()
    } else {
        apis.of(audience).cloned().unwrap_or_default()
    }
}

/// RFC 6749 §3.3: the scopes asked for, every one of which the key must
/// still hold and the audience must define; when none were asked for, all
/// the key holds that the audience defines. So a token tells its audience
/// nothing of the key's rights elsewhere, and a scope name another API also
/// uses is never honoured here on that API's behalf.
pub fn grant_scope(
    requested: Option<ScopeSet>,
    effective: &ScopeSet,
    audience: &str,
    defined: &ScopeSet,
) -> Result<ScopeSet, GrantError> {
    let Some(requested) = requested else {
        return Ok(effective.filter(|s| defined.contains(s)));
    };
    if let Some(missing) = requested.iter().find(|s| !effective.contains(s)) {
        return Err(GrantError::InvalidScope(format!(
            "this key may not request scope {missing:?}"
        )));
    }
    if let Some(foreign) = requested.iter().find(|s| !defined.contains(s)) {
        return Err(GrantError::InvalidScope(format!(
            "scope {foreign:?} does not belong to {audience:?}: ask for it with the resource \
             parameter naming the API that defines it"
        )));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Audience;

    const ISSUER: &str = "https://auth.example.com";
    const API: &str = "https://api.example.com";
    const OTHER: &str = "https://other.example.com";

    fn held(audiences: &[&str]) -> Vec<String> {
        audiences.iter().map(|a| (*a).to_owned()).collect()
    }

    fn target_error(result: Result<String, GrantError>) -> String {
        match result {
            Err(GrantError::InvalidTarget(why)) => why,
            other => panic!("expected invalid_target, got {other:?}"),
        }
    }

    #[test]
    fn without_a_resource_the_key_decides() {
        assert_eq!(choose_audience(&[], &[], false, ISSUER).unwrap(), ISSUER);
        assert_eq!(
            choose_audience(&[], &held(&[API]), false, ISSUER).unwrap(),
            API
        );
        target_error(choose_audience(&[], &held(&[API, OTHER]), false, ISSUER));
    }

    #[test]
    fn a_resource_must_be_held() {
        assert_eq!(
            choose_audience(&[OTHER], &held(&[API, OTHER]), false, ISSUER).unwrap(),
            OTHER
        );
        assert_eq!(
            choose_audience(&[ISSUER], &[], false, ISSUER).unwrap(),
            ISSUER
        );
        target_error(choose_audience(&[OTHER], &held(&[API]), false, ISSUER));
        target_error(choose_audience(&[API], &[], false, ISSUER));
        // A key with audiences reaches the issuer only for keygate's own scopes.
        target_error(choose_audience(&[ISSUER], &held(&[API]), false, ISSUER));
        assert_eq!(
            choose_audience(&[ISSUER], &held(&[API]), true, ISSUER).unwrap(),
            ISSUER
        );
        // Without a resource its API stays the default.
        assert_eq!(
            choose_audience(&[], &held(&[API]), true, ISSUER).unwrap(),
            API
        );
    }

    #[test]
    fn at_most_one_resource() {
        target_error(choose_audience(&[API, API], &held(&[API]), false, ISSUER));
        target_error(choose_audience(
            &[API, OTHER],
            &held(&[API, OTHER]),
            false,
            ISSUER,
        ));
    }

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap()
    }

    fn registry() -> ApiScopes {
        [(API, "read write"), (OTHER, "read bill")]
            .into_iter()
            .map(|(api, scopes)| (Audience::from_stored(api), set(scopes)))
            .collect()
    }

    #[test]
    fn scopes_asked_for_must_be_held() {
        let effective = set("read write");
        assert_eq!(
            grant_scope(None, &effective, API, &effective).unwrap(),
            effective
        );
        let read = set("read");
        assert_eq!(
            grant_scope(Some(read.clone()), &effective, API, &effective).unwrap(),
            read
        );
        assert!(matches!(
            grant_scope(ScopeSet::parse("read admin").ok(), &effective, API, &effective),
            Err(GrantError::InvalidScope(why)) if why.contains("\"admin\"")
        ));
        assert!(matches!(
            grant_scope(Some(set("read")), &ScopeSet::default(), API, &effective),
            Err(GrantError::InvalidScope(_))
        ));
    }

    #[test]
    fn each_audience_defines_its_scopes() {
        let apis = registry();
        assert_eq!(audience_scopes(API, ISSUER, &apis), set("read write"));
        assert_eq!(audience_scopes(OTHER, ISSUER, &apis), set("bill read"));
        assert_eq!(
            audience_scopes(ISSUER, ISSUER, &apis),
            set("keygate:admin keygate:introspect keygate:keys")
        );
        assert!(audience_scopes("https://gone.example.com", ISSUER, &apis).is_empty());
    }

    #[test]
    fn a_token_carries_only_its_audiences_scopes() {
        let apis = registry();
        let key = set("write bill keygate:introspect");
        let grant = |audience: &str, asked: Option<&str>| {
            let defined = audience_scopes(audience, ISSUER, &apis);
            grant_scope(asked.map(set), &key, audience, &defined)
        };
        assert_eq!(grant(API, None).unwrap(), set("write"));
        assert_eq!(grant(OTHER, None).unwrap(), set("bill"));
        assert_eq!(grant(ISSUER, None).unwrap(), set("keygate:introspect"));
        assert_eq!(grant(OTHER, Some("bill")).unwrap(), set("bill"));
        // Held, but another audience's: refused, not silently dropped.
        for (audience, asked) in [
            (API, "bill"),
            (API, "write keygate:introspect"),
            (ISSUER, "write"),
        ] {
            assert!(
                matches!(
                    grant(audience, Some(asked)),
                    Err(GrantError::InvalidScope(why)) if why.contains("does not belong")
                ),
                "{asked} for {audience}"
            );
        }
        // A key with nothing for an audience gets an empty scope.
        assert!(grant("https://gone.example.com", None).unwrap().is_empty());
    }
}
