//! One-time codes as an authenticator app computes them, written out here
//! from RFC 6238 and RFC 4226 rather than taken from keygate's code, so the
//! tests check keygate against the standard.

use chrono::{DateTime, Utc};

/// RFC 4648 base32 (no padding), as authenticator apps read setup keys.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let index = ALPHABET.iter().position(|&a| a == c).expect("base32") as u64;
        value = (value << 5) | index;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// RFC 6238 with HMAC-SHA-1, 6 digits, 30-second steps (RFC 4226 §5.3's
/// dynamic truncation), at `at`.
pub fn totp(key: &[u8], at: DateTime<Utc>) -> String {
    use aws_lc_rs::hmac;
    let step = (at.timestamp() / 30) as u64;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mac = hmac::sign(&key, &step.to_be_bytes());
    let mac = mac.as_ref();
    let offset = (mac[19] & 0x0f) as usize;
    let number = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!("{:06}", number % 1_000_000)
}
