//! Text as typed: scope lists, audiences and durations.

use super::*;

/// The input as text: a scope list and an audience.
pub(crate) fn scopes_and_audiences() -> Target {
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
pub(crate) fn durations() -> Target {
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
