//! Offline validation throughput of `keygate_verifier::Verifier`: one
//! token validated per iteration (header parse, kid lookup, signature,
//! claims), on one core. Tokens are signed with keygate's own signing code;
//! no server is needed.
//!
//! Run: `cargo bench --bench verifier`. Beside each algorithm, the same token
//! through plain `jsonwebtoken::decode` with a prepared `DecodingKey` and a
//! strict `Validation`, for comparison.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use keygate::signing::{ActiveKey, KeyPair, SigningAlg};
use keygate_verifier::{Claims, JwkSet, Verifier};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.com";
const AUDIENCE: &str = "https://api.example.com";

struct Fixture {
    verifier: Verifier,
    token: String,
    jwks: JwkSet,
    kid: String,
}

fn fixture(alg: SigningAlg) -> Fixture {
    let der = KeyPair::generate(alg).expect("generate");
    let pair = KeyPair::from_pkcs8(alg, &der).expect("parse");
    let kid = pair.thumbprint();
    let jwks: JwkSet =
        serde_json::from_value(json!({ "keys": [pair.public_jwk(&kid)] })).expect("JWKS");
    let signer = ActiveKey::new(kid.clone(), pair);
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "kgc_0123456789abcdefghijklm".into(),
        client_id: "kgc_0123456789abcdefghijklm".into(),
        aud: vec![AUDIENCE.into()],
        scope: "read write".into(),
        iat: now,
        exp: now + 3600,
        nbf: None,
        jti: "0193a5c2-7d1e-7c3a-9f2b-5e8d4c3b2a10".into(),
    };
    let token = signer.sign_jwt(&claims).expect("sign");
    let verifier = Verifier::from_jwks(&jwks, ISSUER, AUDIENCE);
    assert!(verifier.verify_offline(&token).is_ok());
    Fixture {
        verifier,
        token,
        jwks,
        kid,
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_offline");
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
        let f = fixture(alg);
        group.bench_with_input(BenchmarkId::new("keygate", alg.as_str()), &f, |b, f| {
            b.iter(|| f.verifier.verify_offline(std::hint::black_box(&f.token)))
        });

        let jwk = f.jwks.find(&f.kid).expect("jwk");
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
        let mut validation = jsonwebtoken::Validation::new(alg.to_jsonwebtoken());
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        group.bench_with_input(
            BenchmarkId::new("jsonwebtoken_decode", alg.as_str()),
            &f,
            |b, f| {
                b.iter(|| {
                    jsonwebtoken::decode::<Value>(std::hint::black_box(&f.token), &key, &validation)
                        .expect("valid")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
