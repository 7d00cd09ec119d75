//! The secretless scenario: the token endpoint's throughput for a warm
//! `private_key_jwt` client beside a warm client-secret one, on one server
//! in one run (INTERFACE.md "Keys without a shared secret"). Every
//! assertion is signed beforehand with its own `jti` (keygate accepts each
//! once), so the load generator only sends; the server pays for one
//! signature check and one `jti` write per request, no argon2.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use super::*;
use crate::fixture::{OWNER, SCOPE};

const ASSERTION_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer";

/// The row label of a client kind at `conns` connections.
pub fn label(kind: &str, conns: usize) -> String {
    format!("secretless: {kind} {conns}")
}

/// A client's P-256 key pair: the private half signs, the public half is
/// what keygate is given (a JWK).
struct Signer {
    encoding: EncodingKey,
    public_jwk: String,
}

impl Signer {
    fn generate() -> Result<Self> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| anyhow!("generating a P-256 key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .map_err(|_| anyhow!("reading the P-256 key"))?;
        // The uncompressed point: 0x04, then x and y (32 bytes each).
        let point = pair.public_key().as_ref();
        if point.len() != 65 {
            bail!("unexpected P-256 public key length {}", point.len());
        }
        let public_jwk = serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        })
        .to_string();
        Ok(Self {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_jwk,
        })
    }

    /// `count` token requests, each with a fresh assertion valid for 30 minutes.
    fn calls(&self, client_id: &str, audience: &str, count: usize) -> Result<Vec<Call>> {
        let now = chrono::Utc::now().timestamp();
        let header = Header::new(Algorithm::ES256);
        (0..count)
            .map(|_| {
                let claims = serde_json::json!({
                    "iss": client_id,
                    "sub": client_id,
                    "aud": audience,
                    "iat": now,
                    "exp": now + 1800,
                    "jti": uuid::Uuid::new_v4().to_string(),
                });
                let jwt = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
                Ok(Call::unauthenticated_form(
                    TOKEN_PATH,
                    format!(
                        "{TOKEN_BODY}&client_assertion_type={ASSERTION_TYPE}&client_assertion={jwt}"
                    ),
                ))
            })
            .collect()
    }
}

impl Bench {
    pub fn secretless(&mut self) -> Result<()> {
        let fixture = self.fixture()?;
        let secret = self.keys(&fixture, 1, 0)?;
        let signer = Signer::generate()?;
        let jwk_file = fixture.dir.path().join("client.jwk.json");
        std::fs::write(&jwk_file, &signer.public_jwk).context("writing the public JWK")?;
        let jwk_path = jwk_file.display().to_string();
        let created = fixture.cli(&[
            "keys",
            "create",
            "--owner",
            OWNER,
            "--name",
            "bench-private-key-jwt",
            "--scopes",
            SCOPE,
            "--audience",
            AUDIENCE,
            "--public-key",
            &jwk_path,
            "--json",
        ])?;
        let created: serde_json::Value =
            serde_json::from_str(&created).context("keys create --json")?;
        let client_id = created["client_id"]
            .as_str()
            .ok_or_else(|| anyhow!("keys create --json without client_id: {created}"))?
            .to_owned();

        let keygate = Server::keygate(&fixture)?;
        let audience = format!("http://{}{TOKEN_PATH}", keygate.addr);
        self.warm_up(&keygate, &secret)?;
        let first = signer.calls(&client_id, &audience, 1)?;
        self.rt
            .block_on(load::fetch_ok(keygate.addr, &first[0]))
            .context("the first private_key_jwt token request")?;

        let window = {
            let t = self.timing();
            (t.warmup + t.measure).as_secs_f64()
        };
        for conns in [1, 64] {
            progress(format!("secretless: client_secret, {conns} connections"));
            let s = self.tokens(&keygate, &secret, conns);
            let secret_rps = s.rps;
            let row = self.row(
                "secretless",
                &label("client_secret", conns),
                &keygate,
                conns,
                s,
            );
            self.rows.push(row);

            // Enough assertions for the whole window at 1.5 × the secret's
            // rate: the run must not run out of them.
            let count = ((secret_rps * window * 1.5) as usize).max(1000);
            progress(format!("secretless: signing {count} assertions"));
            let calls = signer.calls(&client_id, &audience, count)?;
            progress(format!("secretless: private_key_jwt, {conns} connections"));
            let group = Group {
                connections: conns,
                calls: Calls::each_once(calls),
                expect: vec![200],
                bind: Bind::Default,
            };
            let s = self.run(&keygate, vec![group]).pop().unwrap_or_default();
            let ratio = if secret_rps > 0.0 {
                s.rps / secret_rps
            } else {
                0.0
            };
            let mut row = self.row(
                "secretless",
                &label("private_key_jwt", conns),
                &keygate,
                conns,
                s,
            );
            row.note = Some(format!(
                "{ratio:.2} × the client_secret row just before it (each request a fresh assertion: one ES256 check and one jti write)"
            ));
            self.rows.push(row);
        }
        Ok(())
    }
}
