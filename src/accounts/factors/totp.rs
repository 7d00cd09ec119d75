//! Authenticator apps (RFC 6238 as every app reads it: HMAC-SHA-1, 6
//! digits, 30-second steps), through the `totp-rs` crate: a secret of 160
//! random bits, its `otpauth://` URI, that URI as a QR code in inline SVG
//! (no script, no image request: the console's CSP is unchanged), and a
//! code checked one step either side, returning the step it matched so a
//! code is taken only once ([`super::store::take_step`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use totp_rs::{Algorithm, Builder, Totp};
use zeroize::Zeroizing;

use crate::accounts::settings::AccountSealer;

/// Bytes of a new secret: 160 bits, as RFC 4226 §4 recommends.
const SECRET_BYTES: usize = 20;
/// The name authenticator apps show above the code.
const ISSUER_LABEL: &str = "keygate";

/// A TOTP secret in clear. Wiped on drop, never printed.
pub(crate) struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(redacted)")
    }
}

impl TotpSecret {
    pub(crate) fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        crate::random::fill(&mut bytes);
        Self(bytes)
    }

    fn totp(&self, account: &str) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(self.0.to_vec())
            .with_account_name(account.replace(':', ""))
            .with_issuer(Some(ISSUER_LABEL))
            .build()
            .ok()
    }

    /// `otpauth://totp/keygate:ACCOUNT?secret=...&issuer=keygate`: what the
    /// QR code holds, for an app to add.
    pub(crate) fn uri(&self, account: &str) -> Option<Zeroizing<String>> {
        self.totp(account)?.to_url().ok().map(Zeroizing::new)
    }

    /// The secret in base32, for typing into an app by hand.
    pub(crate) fn base32(&self, account: &str) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(self.totp(account)?.secret().to_base32()))
    }

    /// The 30-second step whose code `code` is, within one step of `now`'s.
    pub(crate) fn step_of(&self, code: &str, now: DateTime<Utc>) -> Option<i64> {
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let time = u64::try_from(now.timestamp()).ok()?;
        let step = self.totp("")?.check(&digits, time)?;
        i64::try_from(step).ok()
    }

    /// Sealed for the `totp_factors` row of `user_id` (base64).
    pub(crate) fn seal(&self, sealer: &AccountSealer, user_id: &str) -> Option<String> {
        let sealed = sealer.seal(&bound_to(user_id), &self.0)?;
        Some(STANDARD.encode(sealed))
    }

    /// The secret of `user_id`'s row, if it opens.
    pub(crate) fn open(sealer: &AccountSealer, user_id: &str, stored: &str) -> Option<Self> {
        let sealed = STANDARD.decode(stored).ok()?;
        let plain = sealer.open(&bound_to(user_id), &sealed)?;
        Some(Self(Zeroizing::new(plain.to_vec())))
    }
}

fn bound_to(user_id: &str) -> String {
    format!("totp secret of {user_id}")
}

/// `uri` as a QR code: an `<svg>` element to put in the page as it is.
pub(crate) fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(220, 220)
            .quiet_zone(true)
            .dark_color(qrcode::render::svg::Color("#000000"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 vectors (its seed, 8 digits there), read
    /// at 6 digits: the last six.
    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let secret = TotpSecret(Zeroizing::new(b"12345678901234567890".to_vec()));
        let totp = secret.totp("test").unwrap();
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time).to_string(), eight[2..], "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_one_step_either_side_and_no_further() {
        let secret = TotpSecret(Zeroizing::new(b"12345678901234567890".to_vec()));
        let at = |t: i64| DateTime::from_timestamp(t, 0).unwrap();
        // 287082 is the code of step 1 (t = 30..59).
        assert_eq!(secret.step_of("287082", at(59)), Some(1));
        assert_eq!(secret.step_of("287 082", at(89)), Some(1));
        assert_eq!(secret.step_of("287082", at(5)), Some(1));
        assert_eq!(secret.step_of("287082", at(90)), None);
        assert_eq!(secret.step_of("28708", at(59)), None);
        assert_eq!(secret.step_of("28708x", at(59)), None);
    }

    #[test]
    fn the_uri_names_keygate_and_the_account_and_holds_the_secret() {
        let secret = TotpSecret::generate();
        let uri = secret.uri("ann@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/keygate:ann%40example.com?"),
            "{}",
            *uri
        );
        assert!(uri.contains(&format!("secret={}", *secret.base32("x").unwrap())));
        assert!(uri.contains("issuer=keygate"));
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg") && !svg.contains("style="), "{svg}");
        assert_eq!(format!("{secret:?}"), "TotpSecret(redacted)");
    }

    #[test]
    fn a_sealed_secret_opens_for_its_own_person_only() {
        let sealer = AccountSealer::new(&crate::signing::MasterKey::generate());
        let secret = TotpSecret::generate();
        let sealed = secret.seal(&sealer, "u1").unwrap();
        assert_eq!(
            TotpSecret::open(&sealer, "u1", &sealed).unwrap().0,
            secret.0
        );
        assert!(TotpSecret::open(&sealer, "u2", &sealed).is_none());
        assert!(TotpSecret::open(&sealer, "u1", "not base64").is_none());
    }
}
