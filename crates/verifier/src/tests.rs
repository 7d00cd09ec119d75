//! The verifier's unit tests: keys, claims and rules against a local issuer.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;

const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

/// An issuer on a random port serving RFC 8414 metadata and `jwks`,
/// with `Cache-Control: max-age={max_age}`; returns its URL.
fn serve_issuer(jwks: serde_json::Value, max_age: u64) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = serde_json::json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut lines = BufReader::new(&stream).lines();
            let request = lines.next().unwrap().unwrap();
            while !lines.next().unwrap().unwrap().is_empty() {}
            let body = if request.starts_with("GET /jwks ") {
                jwks.to_string()
            } else {
                metadata.to_string()
            };
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 cache-control: max-age={max_age}\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
    });
    issuer
}

/// A token naming `kid`, with a signature that cannot verify: the
/// verifier looks the key up (and may refetch) before it checks one.
fn token_with_kid(kid: &str) -> String {
    let header = serde_json::json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode("{}"),
        URL_SAFE_NO_PAD.encode([0u8; 64])
    )
}

fn one_key() -> serde_json::Value {
    serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": ED25519_X}]})
}

#[tokio::test]
async fn an_unknown_kid_refetches_once_per_interval_on_the_verifiers_clock() {
    let issuer = serve_issuer(one_key(), 3600);
    let clock = ManualClock::new();
    let verifier = Verifier::builder(&issuer, "https://api.example.com")
        .unknown_kid_refetch_interval(Duration::from_secs(30))
        .clock(&clock)
        .build()
        .await
        .unwrap();
    let unknown = token_with_kid("rotated-in");
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(verifier.jwks_fetches(), 1, "the start-up fetch is recent");

    clock.advance(Duration::from_secs(29));
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(verifier.jwks_fetches(), 1);

    clock.advance(Duration::from_secs(1));
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
    // The interval counts again from that refetch, for any unknown kid.
    assert_eq!(
        verifier.verify(&token_with_kid("another")).await,
        Err(VerifyError::UnknownKey)
    );
    clock.advance(Duration::from_secs(29));
    assert_eq!(
        verifier.verify(&unknown).await,
        Err(VerifyError::UnknownKey)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
    // A known kid never refetches.
    assert_eq!(
        verifier.verify(&token_with_kid("ed")).await,
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
}

#[tokio::test]
async fn keys_are_refetched_when_their_max_age_has_passed() {
    let issuer = serve_issuer(one_key(), 60);
    let clock = ManualClock::new();
    let verifier = Verifier::builder(&issuer, "https://api.example.com")
        .clock(&clock)
        .build()
        .await
        .unwrap();
    let known = token_with_kid("ed");
    clock.advance(Duration::from_secs(59));
    assert_eq!(
        verifier.verify(&known).await,
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verifier.jwks_fetches(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        verifier.verify(&known).await,
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
    assert_eq!(
        verifier.verify(&known).await,
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
    // verify_offline never fetches, however stale the keys.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        verifier.verify_offline(&known),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(verifier.jwks_fetches(), 2);
}

#[test]
fn cached_keys_decide_staleness_and_refetches_by_the_time_given() {
    let t0 = Instant::now();
    let keys = CachedKeys::fetched(
        Arc::new(KeySet::from_jwks(
            &serde_json::from_value(one_key()).unwrap(),
        )),
        t0,
        Duration::from_secs(60),
    );
    let interval = Duration::from_secs(30);
    assert!(!keys.is_stale(t0 + Duration::from_secs(59)));
    assert!(keys.is_stale(t0 + Duration::from_secs(60)));
    assert!(!keys.may_refetch_for("other", t0 + Duration::from_secs(29), interval));
    assert!(keys.may_refetch_for("other", t0 + Duration::from_secs(30), interval));
    assert!(!keys.may_refetch_for("ed", t0 + Duration::from_secs(3600), interval));
}

#[test]
fn cache_control_sets_the_key_lifetime() {
    assert_eq!(
        cache_lifetime("public, max-age=300"),
        Duration::from_secs(300)
    );
    assert_eq!(cache_lifetime("max-age=1"), MIN_KEYS_TTL);
    assert_eq!(cache_lifetime("max-age=99999999"), MAX_KEYS_TTL);
    assert_eq!(cache_lifetime("no-store"), MIN_KEYS_TTL);
    assert_eq!(cache_lifetime("public"), DEFAULT_KEYS_TTL);
    assert_eq!(cache_lifetime("max-age=abc"), DEFAULT_KEYS_TTL);
}

#[test]
fn metadata_url_follows_rfc_8414() {
    assert_eq!(
        metadata_url("https://auth.example.com").unwrap(),
        "https://auth.example.com/.well-known/oauth-authorization-server"
    );
    assert_eq!(
        metadata_url("https://auth.example.com/tenant/").unwrap(),
        "https://auth.example.com/.well-known/oauth-authorization-server/tenant"
    );
    assert!(metadata_url("ftp://x").is_err());
    assert!(metadata_url("https://x/?a=b").is_err());
}
