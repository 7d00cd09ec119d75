//! A keygate client without a secret: it proves possession of its private
//! key with a fresh signed assertion on every token request (RFC 7523 §2.2,
//! `private_key_jwt`), and keygate holds only the public key
//! (docs/SECRETLESS.md).
//!
//! ```text
//! openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out client.pem
//! openssl pkey -in client.pem -pubout -out client.pub.pem
//! keygate keys create --owner ci@example.com --name deploy --scopes "deploy:write" \
//!     --public-key client.pub.pem
//! KEYGATE_ISSUER=http://127.0.0.1:8080 CLIENT_ID=kgc_... PRIVATE_KEY=client.pem \
//!     cargo run --example private_key_jwt_client
//! ```
//!
//! It prints the token response. `SCOPE` and `RESOURCE` ask for less or for
//! one audience.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// What the assertion says: the client, to the token endpoint, once.
fn assertion(client_id: &str, token_endpoint: &str, key: &EncodingKey) -> Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "iat": now,
        // Short-lived: keygate accepts at most 60 minutes, and each `jti` once.
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        &claims,
        key,
    )?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("set {name}"));
    let issuer = var("KEYGATE_ISSUER")?;
    let client_id = var("CLIENT_ID")?;
    let pem = std::fs::read(var("PRIVATE_KEY")?).context("reading PRIVATE_KEY")?;
    // A P-256 key in PKCS#8 PEM; for Ed25519 use `from_ed_pem` and
    // `Algorithm::EdDSA`, for RSA `from_rsa_pem` and `Algorithm::RS256`.
    let key = EncodingKey::from_ec_pem(&pem).context("PRIVATE_KEY is not a P-256 PEM key")?;

    let token_endpoint = format!("{}/oauth/token", issuer.trim_end_matches('/'));
    let signed = assertion(&client_id, &token_endpoint, &key)?;
    let mut form = vec![
        ("grant_type", "client_credentials".to_owned()),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
        ),
        ("client_assertion", signed),
    ];
    for (param, name) in [("scope", "SCOPE"), ("resource", "RESOURCE")] {
        if let Ok(value) = std::env::var(name) {
            form.push((param, value));
        }
    }
    let response = reqwest::Client::new()
        .post(&token_endpoint)
        .form(&form)
        .send()
        .await
        .context("the token endpoint did not answer")?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    println!("{body}");
    Ok(())
}
