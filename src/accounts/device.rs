//! Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device
//! Cookies"): a browser where a person signed in before holds one for their
//! account, and a wrong password typed there counts against that browser
//! alone, never toward the lockout of their account that guessing from
//! many addresses engages. So an attacker cannot lock the owner out.
//!
//! The value is a random nonce (256 bits) and an HMAC over it and the
//! person's user ID, under a key derived from `KEYGATE_SECRET_KEY`
//! ([`TokenHasher`]): nothing is stored, every keygate process recognises
//! it, it names no one, and another account's cookie (or a forged one)
//! means nothing. The transport renders it `HttpOnly`, `SameSite=Strict`,
//! `Path=/`, for a year, `Secure` and `__Host-` prefixed under an https
//! issuer. One browser holds one: signing in as someone else replaces it.

use std::fmt;

use chrono::Duration;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::settings::AccountSettings;
use super::token::random_token;
use crate::signing::TokenHasher;

/// The cookie's name under an https issuer (see [`SECURE_COOKIE_NAME`](super::SECURE_COOKIE_NAME)).
pub const SECURE_DEVICE_COOKIE_NAME: &str = "__Host-keygate-device";
/// The cookie's name under a plain-http issuer.
pub const PLAIN_DEVICE_COOKIE_NAME: &str = "keygate-device";

/// How long a browser keeps it.
pub const DEVICE_COOKIE_LIFETIME: Duration = Duration::days(365);

/// The HMAC's purpose label, which keeps it from ever matching a session or
/// link hash under the same key.
const MAC_PURPOSE: &str = "device cookie";
/// The purpose label of the name a device's failures are counted under.
const ID_PURPOSE: &str = "device id";

/// The cookie's name for this keygate's issuer.
pub fn device_cookie_name(settings: &AccountSettings) -> &'static str {
    settings.cookie_name(SECURE_DEVICE_COOKIE_NAME, PLAIN_DEVICE_COOKIE_NAME)
}

/// The device cookie a successful sign-in sets, as plain data (the
/// transport renders it). No `Display`, a redacted `Debug`.
pub struct DeviceCookie {
    name: &'static str,
    value: Zeroizing<String>,
    secure: bool,
}

impl DeviceCookie {
    /// A new device cookie for the person with this user ID.
    pub(super) fn issue(settings: &AccountSettings, user_id: &str) -> Self {
        let nonce = random_token();
        let mac = mac(&settings.token_hasher, &nonce, user_id);
        Self {
            name: device_cookie_name(settings),
            value: Zeroizing::new(format!("{}.{mac}", nonce.as_str())),
            secure: settings.https,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    /// Seconds the browser keeps it ([`DEVICE_COOKIE_LIFETIME`]).
    pub fn max_age_secs(&self) -> i64 {
        DEVICE_COOKIE_LIFETIME.num_seconds()
    }

    pub fn secure(&self) -> bool {
        self.secure
    }
}

impl fmt::Debug for DeviceCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceCookie")
            .field("name", &self.name)
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

fn mac(hasher: &TokenHasher, nonce: &str, user_id: &str) -> String {
    // The nonce has a fixed length: nonce then ID reads one way only.
    hasher.hash(MAC_PURPOSE, &format!("{nonce}{user_id}"))
}

/// The name a recognised device's failures are counted under: derived from
/// its nonce, so the database never holds the cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeviceId(String);

impl DeviceId {
    pub(super) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The device a presented cookie names, when it is a device cookie this
/// keygate issued for the person with `user_id`; checked in constant time.
pub(super) fn recognise(
    hasher: &TokenHasher,
    presented: Option<&str>,
    user_id: &str,
) -> Option<DeviceId> {
    let (nonce, presented_mac) = presented?.split_once('.')?;
    let expected = mac(hasher, nonce, user_id);
    let same = bool::from(expected.as_bytes().ct_eq(presented_mac.as_bytes()));
    same.then(|| DeviceId(hasher.hash(ID_PURPOSE, nonce)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;
    use crate::signing::MasterKey;

    fn settings_with(key: &str, https: bool) -> AccountSettings {
        let master = MasterKey::from_hex(&key.repeat(32)).unwrap();
        let hasher = master.token_hasher();
        let hours = "1h".parse::<HumanDuration>().unwrap();
        AccountSettings {
            session_idle: hours,
            session_max: hours,
            invite_ttl: hours,
            token_hasher: hasher,
            mail_to_files: false,
            https,
            password_sign_in: true,
            require_mfa: crate::accounts::RequireMfa::Off,
            sealer: crate::accounts::AccountSealer::new(&master),
            passkeys: None,
        }
    }

    #[test]
    fn a_device_cookie_is_recognised_for_its_own_account_only() {
        let settings = settings_with("11", true);
        let hasher = &settings.token_hasher;
        let cookie = DeviceCookie::issue(&settings, "user-a");
        assert_eq!(cookie.name(), "__Host-keygate-device");
        assert!(cookie.secure());
        assert_eq!(cookie.max_age_secs(), 365 * 24 * 3600);
        assert!(!format!("{cookie:?}").contains(cookie.value()));

        let device = recognise(hasher, Some(cookie.value()), "user-a").unwrap();
        // The same cookie is the same device; the database never sees the value.
        assert_eq!(
            recognise(hasher, Some(cookie.value()), "user-a"),
            Some(device.clone())
        );
        assert!(
            !device
                .as_str()
                .contains(cookie.value().split('.').next().unwrap())
        );
        // Another account, another key, another browser's cookie, or a
        // forged one: not recognised.
        assert_eq!(recognise(hasher, Some(cookie.value()), "user-b"), None);
        let elsewhere = settings_with("22", true);
        assert_eq!(
            recognise(&elsewhere.token_hasher, Some(cookie.value()), "user-a"),
            None
        );
        let other = DeviceCookie::issue(&settings, "user-a");
        assert_ne!(other.value(), cookie.value());
        let (nonce, mac) = cookie.value().split_once('.').unwrap();
        let (other_nonce, _) = other.value().split_once('.').unwrap();
        let swapped = format!("{other_nonce}.{mac}");
        let flipped = format!("{nonce}.{}", mac.replace(&mac[..1], "x"));
        for forged in [
            swapped.as_str(),
            flipped.as_str(),
            nonce,
            "",
            ".",
            "garbage",
        ] {
            assert_eq!(recognise(hasher, Some(forged), "user-a"), None, "{forged}");
        }
        assert_eq!(recognise(hasher, None, "user-a"), None);
    }

    #[test]
    fn a_plain_http_issuer_names_it_without_the_host_prefix() {
        let cookie = DeviceCookie::issue(&settings_with("11", false), "user-a");
        assert_eq!(cookie.name(), "keygate-device");
        assert!(!cookie.secure());
    }
}
