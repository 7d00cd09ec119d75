//! Scopes (RFC 6749 §3.3) and audiences (RFC 8707 resource indicators).

use std::collections::BTreeSet;
use std::fmt;

/// Manage one's own keys through the management API.
pub const KEYS_SCOPE: &str = "keygate:keys";
/// Manage everything.
pub const ADMIN_SCOPE: &str = "keygate:admin";
/// Introspect any token.
pub const INTROSPECT_SCOPE: &str = "keygate:introspect";
/// keygate's own scopes, known without `apis add`.
pub const BUILTIN_SCOPES: [&str; 3] = [KEYS_SCOPE, ADMIN_SCOPE, INTROSPECT_SCOPE];

const MAX_SCOPE_LEN: usize = 128;

/// The namespace of keygate's own scopes: no registered API may define a
/// scope in it, so that a scope added to keygate later cannot already
/// belong to an API.
pub const RESERVED_PREFIX: &str = "keygate:";

pub fn is_builtin(scope: &str) -> bool {
    BUILTIN_SCOPES.contains(&scope)
}

/// True for a scope in keygate's namespace, built in or not.
pub fn is_reserved(scope: &str) -> bool {
    scope.starts_with(RESERVED_PREFIX)
}

/// A set of scope tokens, each `1*( %x21 / %x23-5B / %x5D-7E )`.
#[derive(Debug, Clone, Default, PartialEq, Eq, diesel::FromSqlRow)]
pub struct ScopeSet(BTreeSet<String>);

crate::text_column!(ScopeSet, |text: String| ScopeSet::from_stored(&text));

/// A scope that cannot be a scope token; the text names the offender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_invalid_scope(.0))]
pub struct ScopeError(pub String);

fn describe_invalid_scope(scope: &str) -> String {
    if scope.contains(',') {
        let spaced = scope
            .split(',')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>();
        return format!(
            "{scope:?} contains a comma: scopes are separated by spaces, as in {:?}",
            spaced.join(" ")
        );
    }
    format!(
        "{scope:?} is not a valid scope (printable ASCII without spaces, quotes or backslashes)"
    )
}

impl ScopeSet {
    /// Parses a space-separated list; repeated scopes collapse into one. A
    /// comma, which RFC 6749 would allow inside a scope, is refused: in a
    /// list a person typed, `read,write` means two scopes, and registering
    /// it as one would grant neither.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        text.split(' ')
            .filter(|s| !s.is_empty())
            .map(|scope| {
                let valid = scope.len() <= MAX_SCOPE_LEN
                    && scope.bytes().all(|b| {
                        b != b','
                            && (b == 0x21
                                || (0x23..=0x5B).contains(&b)
                                || (0x5D..=0x7E).contains(&b))
                    });
                if valid {
                    Ok(scope.to_owned())
                } else {
                    Err(ScopeError(scope.to_owned()))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Reads a list this program wrote itself.
    pub fn from_stored(text: &str) -> Self {
        Self(
            text.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn is_subset(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn filter(&self, mut keep: impl FnMut(&str) -> bool) -> ScopeSet {
        Self(self.0.iter().filter(|s| keep(s)).cloned().collect())
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().cloned().collect()
    }
}

/// A JSON list of scope strings, sorted.
impl serde::Serialize for ScopeSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<S: Into<String>> FromIterator<S> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = S>>(items: I) -> Self {
        Self(items.into_iter().map(Into::into).collect())
    }
}

/// Space-separated, sorted: the stored form and the `scope` claim.
impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(scope)?;
            first = false;
        }
        Ok(())
    }
}

/// An audience: the absolute URI identifying a resource server (RFC 8707 §2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Audience(String);

impl Audience {
    pub fn parse(text: &str) -> Result<Self, String> {
        let url = url::Url::parse(text).map_err(|_| format!("{text:?} is not an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(format!(
                "{text:?} must not contain a fragment (RFC 8707 §2)"
            ));
        }
        if text.contains(char::is_whitespace) || text.len() > 512 {
            return Err(format!("{text:?} is not a valid audience"));
        }
        Ok(Self(text.to_owned()))
    }

    /// Reads an identifier this program stored after parsing it.
    pub fn from_stored(text: &str) -> Self {
        Self(text.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this audience is the issuer's own URL, as URLs compare: a
    /// trailing slash, the case of the scheme and host and a default port
    /// make no other resource server.
    pub fn is_issuer(&self, issuer: &str) -> bool {
        let normal = |text: &str| {
            url::Url::parse(text)
                .map(|url| url.as_str().trim_end_matches('/').to_owned())
                .unwrap_or_else(|_| text.to_owned())
        };
        normal(&self.0) == normal(issuer)
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Audiences are stored space-separated (URIs hold no spaces).
pub fn audiences_to_stored(audiences: &[Audience]) -> String {
    audiences
        .iter()
        .map(Audience::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A key's audiences as stored: read once into their type at the storage
/// seam, never re-parsed by the layers above.
#[derive(Debug, Clone, Default, PartialEq, Eq, diesel::FromSqlRow)]
pub struct Audiences(Vec<Audience>);

crate::text_column!(Audiences, |text: String| Audiences::from_stored(&text));

impl Audiences {
    /// Reads a list this program wrote itself.
    pub fn from_stored(text: &str) -> Self {
        Self(
            text.split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| Audience(s.to_owned()))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Audience> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a.as_str() == audience)
    }

    pub fn to_vec(&self) -> Vec<String> {
        self.0.iter().map(|a| a.0.clone()).collect()
    }
}

/// A JSON list of the audiences' URIs, in their stored order.
impl serde::Serialize for Audiences {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Audience::as_str))
    }
}

impl FromIterator<Audience> for Audiences {
    fn from_iter<I: IntoIterator<Item = Audience>>(items: I) -> Self {
        Self(items.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_normalises() {
        let set = ScopeSet::parse("write read  read keygate:keys").unwrap();
        assert_eq!(set.to_string(), "keygate:keys read write");
        assert!(ScopeSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn rejects_forbidden_characters() {
        for bad in ["a\"b", "a\\b", "é", "a\tb"] {
            assert!(ScopeSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_comma_is_refused_with_the_spaced_spelling() {
        for bad in ["read,write", "read, write", ",", "read write,admin"] {
            let err = ScopeSet::parse(bad).unwrap_err();
            assert!(err.to_string().contains("contains a comma"), "{err}");
        }
        let err = ScopeSet::parse("read,write").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""read,write" contains a comma: scopes are separated by spaces, as in "read write""#
        );
        assert!(
            ScopeSet::parse("a\"b")
                .unwrap_err()
                .to_string()
                .contains("not a valid scope")
        );
    }

    #[test]
    fn audiences_must_be_absolute() {
        assert!(Audience::parse("https://api.example.com").is_ok());
        assert!(Audience::parse("urn:example:api").is_ok());
        assert!(Audience::parse("api.example.com").is_err());
        assert!(Audience::parse("https://x/#frag").is_err());
    }

    #[test]
    fn the_issuer_is_recognised_as_urls_compare() {
        let issuer = "https://auth.example.com";
        for same in [
            "https://auth.example.com",
            "https://auth.example.com/",
            "HTTPS://Auth.Example.com:443",
        ] {
            assert!(Audience::parse(same).unwrap().is_issuer(issuer), "{same}");
        }
        for other in [
            "https://auth.example.com/api",
            "https://auth.example.com:8443",
            "http://auth.example.com",
            "https://api.example.com",
        ] {
            assert!(
                !Audience::parse(other).unwrap().is_issuer(issuer),
                "{other}"
            );
        }
        let with_path = "http://127.0.0.1:8080/keygate";
        assert!(
            Audience::parse("http://127.0.0.1:8080/keygate/")
                .unwrap()
                .is_issuer(with_path)
        );
    }

    proptest! {
        #[test]
        fn display_round_trips(scopes in proptest::collection::btree_set("[!#-+\\--\\[\\]-~]{1,20}", 0..6)) {
            let text = scopes.iter().cloned().collect::<Vec<_>>().join(" ");
            let set = ScopeSet::parse(&text).unwrap();
            prop_assert_eq!(ScopeSet::parse(&set.to_string()).unwrap(), set);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,40}") {
            let _ = ScopeSet::parse(&text);
        }
    }
}
