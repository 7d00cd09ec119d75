//! Rules for text that people and clients give keygate and that it later
//! writes somewhere: a terminal (`keys list`), a log line, an audit row.
//!
//! Two rules, applied where the text enters: names, descriptions and
//! reasons hold no control characters (an ESC or BEL in a key's name would
//! drive the terminal of whoever lists it; a right-to-left override makes
//! `invoice\u{202E}fdp.exe` read as `invoiceexe.pdf`), and anything shaped
//! like a client secret is replaced by a marker before it is logged or
//! stored.

use std::borrow::Cow;

use crate::error::{ErrorKind, FeatureError};

/// Prefix of every client secret. Never change it: secret scanners match it
/// to find leaked keygate secrets. Defined here, below every module that
/// writes text, so that each can recognise a secret; `keys` re-exports it.
pub const SECRET_PREFIX: &str = "kgs_";

/// What is logged and audited in place of anything shaped like a secret.
pub const REDACTED_SECRET: &str = "kgs_...(redacted)";

/// True for a character no name, description or reason may hold: a
/// control character (Unicode category Cc: C0, DEL, C1; NUL, ESC and BEL
/// among them) or a bidirectional control (embeddings, overrides and
/// isolates: U+202A–U+202E, U+2066–U+2069), which makes text read in
/// another order than it is written.
pub fn is_refused(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character of `text` that [`is_refused`], if any.
pub fn first_refused(text: &str) -> Option<char> {
    text.chars().find(|c| is_refused(*c))
}

/// Refuses text holding a character that [`is_refused`]. `code` is the
/// refusal's code, `what` names the field in the message.
pub fn refuse_control_characters(
    code: &'static str,
    what: &str,
    text: &str,
) -> Result<(), TextError> {
    match first_refused(text) {
        None => Ok(()),
        Some(found) => Err(TextError {
            code,
            what: what.to_owned(),
            found,
        }),
    }
}

/// Text refused by [`refuse_control_characters`]: 422 with the code the
/// caller chose. A feature's error wraps it in the variant of the field it
/// belongs to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {what} may not contain control characters (found U+{:04X})",
    u32::from(*found)
)]
pub struct TextError {
    pub code: &'static str,
    /// The field as the message names it ("key's name").
    pub what: String,
    pub found: char,
}

impl FeatureError for TextError {
    fn code(&self) -> &'static str {
        self.code
    }

    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

/// True when `text` could hold a client secret: it contains the secret
/// prefix in any case. Looser than a well-formed secret on purpose (a
/// truncated or mistyped secret is still secret), and no client ID or
/// other identifier keygate generates contains it.
pub fn looks_like_secret(text: &str) -> bool {
    text.as_bytes()
        .windows(SECRET_PREFIX.len())
        .any(|w| w.eq_ignore_ascii_case(SECRET_PREFIX.as_bytes()))
}

/// `text`, or the redaction marker when it could hold a secret.
pub fn redact_secret(text: &str) -> Cow<'_, str> {
    if looks_like_secret(text) {
        Cow::Borrowed(REDACTED_SECRET)
    } else {
        Cow::Borrowed(text)
    }
}

/// A JSON value with every string that could hold a secret redacted.
pub fn redact_json(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if looks_like_secret(&s) => Value::String(REDACTED_SECRET.into()),
        Value::Array(items) => Value::Array(items.into_iter().map(redact_json).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (redact_secret(&k).into_owned(), redact_json(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like a generated secret (`kgs_` and 49 alphanumerics).
    const SECRET: &str = "kgs_Zq3h1Pw9vTbN0xYcK7mR2sLdE5uJfA8gHiO4kB6nC1eWQMdz3";

    #[test]
    fn secrets_are_recognised_loosely() {
        assert!(looks_like_secret(SECRET));
        assert!(looks_like_secret("kgs_short"));
        assert!(looks_like_secret("KGS_upper"));
        assert!(looks_like_secret(&format!("x{SECRET}")));
        assert!(!looks_like_secret("kgc_abcdef"));
        assert!(!looks_like_secret("kgs"));
        assert_eq!(redact_secret(SECRET), REDACTED_SECRET);
        assert_eq!(redact_secret("kgc_abc"), "kgc_abc");
    }

    #[test]
    fn json_strings_are_redacted_at_any_depth() {
        let value = serde_json::json!({"a": [SECRET, "ok"], "b": {"c": "kgs_x"}, "n": 1});
        let shown = redact_json(value).to_string();
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("\"ok\""));
        assert!(!shown.contains("kgs_x"));
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in [
            "\u{1b}]0;PWNED\u{7}",
            "a\0b",
            "tab\there",
            "new\nline",
            "\u{7f}",
            "\u{9b}",
        ] {
            let err = refuse_control_characters("invalid_name", "name", bad).unwrap_err();
            assert!(err.to_string().contains("control characters"), "{bad:?}");
        }
        for good in ["Deploy bot", "Zürich · 東京", "émoji 🔑", "עברית", "مفتاح"] {
            assert!(refuse_control_characters("invalid_name", "name", good).is_ok());
        }
    }

    #[test]
    fn bidirectional_controls_are_refused() {
        let bidi = [
            '\u{202A}', // left-to-right embedding
            '\u{202B}', // right-to-left embedding
            '\u{202C}', // pop directional formatting
            '\u{202D}', // left-to-right override
            '\u{202E}', // right-to-left override
            '\u{2066}', // left-to-right isolate
            '\u{2067}', // right-to-left isolate
            '\u{2068}', // first strong isolate
            '\u{2069}', // pop directional isolate
        ];
        for c in bidi {
            let text = format!("invoice{c}fdp.exe");
            let err = refuse_control_characters("invalid_name", "name", &text).unwrap_err();
            assert_eq!(err.found, c);
            assert!(err.to_string().contains("control characters"), "{err}");
            assert!(!err.to_string().contains(c), "the message repeats it");
        }
        // Their neighbours, and the marks that are not controls, pass.
        for c in [
            '\u{2029}', '\u{202F}', '\u{2065}', '\u{206A}', '\u{200E}', '\u{200F}',
        ] {
            assert!(!is_refused(c), "U+{:04X}", u32::from(c));
        }
    }
}
