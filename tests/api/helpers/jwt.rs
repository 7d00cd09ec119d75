//! Tokens a test crafts: signed by the server's own key or a foreign one,
//! with a tampered payload or header.

use serde_json::Value;

use super::{Key, TestApp};

impl TestApp {
    /// The server's active signing key, decrypted from the database: for
    /// crafting tokens that carry a valid signature by the real key.
    pub fn server_signing_key(&self) -> (String, keygate::signing::KeyPair) {
        let mut conn = self.db();
        let rows = keygate::signing::load_published_keys(&mut conn, chrono::Utc::now())
            .expect("signing keys");
        let row = rows
            .iter()
            .find(|r| r.retired_at.is_none())
            .expect("an active signing key");
        let master = keygate::signing::MasterKey::from_hex(&self.secret_key).expect("master key");
        let pair = row
            .decrypt(&keygate::signing::AtRest::new(&master))
            .expect("decrypt the signing key");
        (row.kid.clone(), pair)
    }

    /// Claims as keygate would issue them for `key`, valid for 10 minutes.
    pub fn claims_for(&self, key: &Key, aud: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        serde_json::json!({
            "iss": self.issuer,
            "sub": key.client_id,
            "client_id": key.client_id,
            "aud": aud,
            "scope": "read",
            "iat": now,
            "exp": now + 600,
            "jti": uuid::Uuid::new_v4().to_string(),
        })
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `header` and `claims` signed with `pair`, whatever the
/// header says.
pub fn sign_token(pair: &keygate::signing::KeyPair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = pair.sign(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64url(&signature))
}

/// The header keygate writes: `{alg, typ: at+jwt, kid}`.
pub fn at_jwt_header(pair: &keygate::signing::KeyPair, kid: &str) -> Value {
    serde_json::json!({"alg": pair.alg().as_str(), "typ": "at+jwt", "kid": kid})
}

/// A new key pair of `alg` that keygate never saw.
pub fn foreign_key_pair(alg: keygate::signing::SigningAlg) -> keygate::signing::KeyPair {
    let der = keygate::signing::KeyPair::generate(alg).expect("generate");
    keygate::signing::KeyPair::from_pkcs8(alg, &der).expect("parse")
}

/// `token` with its payload replaced by `claims`, the signature kept.
pub fn with_payload(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64url(claims.to_string().as_bytes()),
        parts[2]
    )
}

/// The decoded payload of `token`, unverified.
pub fn payload_of(token: &str) -> Value {
    use base64::Engine as _;
    let part = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON payload")
}
