//! The tokens a person's browser and email carry: 256 random bits,
//! base64url without padding (43 characters), wiped on drop.

use zeroize::Zeroizing;

pub(super) fn random_token() -> Zeroizing<String> {
    use base64::Engine as _;
    let mut bytes = Zeroizing::new([0u8; 32]);
    crate::random::fill(bytes.as_mut());
    Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref()))
}
