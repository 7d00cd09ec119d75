//! Recovery codes: ten per person, shown once when the first factor is
//! enrolled (and when regenerated), each working once in place of a second
//! factor. A code is 10 characters (about 49 bits) of an alphabet without
//! look-alikes, shown as `xxxxx-xxxxx`; typed with or without the dash, in
//! either case. Stored as keyed hashes (HMAC under `KEYGATE_SECRET_KEY`):
//! a stolen database gives none of them.

use zeroize::Zeroizing;

use crate::signing::TokenHasher;

/// Codes per person.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// No 0/o, 1/l/i: read off paper and typed back.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
const LENGTH: usize = 10;
const HASH_PURPOSE: &str = "recovery code";

/// Fresh codes in clear, to show once. Wiped on drop, never printed.
pub struct RecoveryCodes(Vec<Zeroizing<String>>);

impl RecoveryCodes {
    pub(crate) fn generate() -> Self {
        let codes = (0..RECOVERY_CODE_COUNT)
            .map(|_| {
                let mut bytes = [0u8; LENGTH];
                let mut code = Zeroizing::new(String::with_capacity(LENGTH + 1));
                // Rejection sampling keeps every character equally likely.
                let mut filled = 0;
                while filled < LENGTH {
                    crate::random::fill(&mut bytes);
                    for &b in &bytes {
                        let limit = 256 - 256 % ALPHABET.len();
                        if filled < LENGTH && usize::from(b) < limit {
                            if filled == LENGTH / 2 {
                                code.push('-');
                            }
                            code.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
                            filled += 1;
                        }
                    }
                }
                code
            })
            .collect();
        Self(codes)
    }

    /// The codes as shown: `xxxxx-xxxxx`.
    pub fn expose(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|code| code.as_str())
    }

    /// Their stored hashes.
    pub(crate) fn hashes(&self, hasher: &TokenHasher) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|code| normalized(code))
            .map(|code| hasher.hash(HASH_PURPOSE, &code))
            .collect()
    }
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} redacted)", self.0.len())
    }
}

/// A code as typed, in the form it was hashed (lower case, no dash or
/// spaces), if it can be one.
fn normalized(text: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    (code.len() == LENGTH && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// The stored hash a typed code would have, if it can be a code.
pub(crate) fn hash_of(hasher: &TokenHasher, typed: &str) -> Option<String> {
    normalized(typed).map(|code| hasher.hash(HASH_PURPOSE, &code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::MasterKey;

    #[test]
    fn ten_distinct_codes_of_the_alphabet_shown_with_a_dash() {
        let codes = RecoveryCodes::generate();
        let shown: Vec<&str> = codes.expose().collect();
        assert_eq!(shown.len(), RECOVERY_CODE_COUNT);
        for code in &shown {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-");
            assert!(normalized(code).is_some(), "{code}");
        }
        let distinct: std::collections::HashSet<_> = shown.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODE_COUNT);
        assert_eq!(format!("{codes:?}"), "RecoveryCodes(10 redacted)");
    }

    #[test]
    fn a_code_typed_loosely_hashes_as_stored() {
        let hasher = MasterKey::generate().token_hasher();
        let codes = RecoveryCodes::generate();
        let first = codes.expose().next().unwrap().to_owned();
        let stored = codes.hashes(&hasher);
        let loose = format!(" {} ", first.to_uppercase().replace('-', " "));
        assert_eq!(hash_of(&hasher, &loose).as_ref(), Some(&stored[0]));
        assert_eq!(hash_of(&hasher, "123456"), None);
        assert_eq!(
            hash_of(&hasher, "abcde-fghi0"),
            None,
            "0 is not of the alphabet"
        );
    }
}
