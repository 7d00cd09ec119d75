//! Token endpoint throughput and latency, end to end over loopback HTTP.
//!
//! Starts keygate in-process on a fresh SQLite database (or PostgreSQL with
//! `KEYGATE_BENCH_POSTGRES_URL=postgres://...` pointing at an empty database
//! it may write to), creates a key, then measures:
//!
//! * warm, one client: sequential `client_credentials` requests on one
//!   keep-alive connection (the secret verified once, then cached);
//! * warm, 32 concurrent clients;
//! * cold: the first request of each of 20 fresh keys, which pays argon2.
//!
//! Run: `cargo bench --bench token_endpoint` (add `-- --seconds 10` to
//! measure longer). keygate-bench's recorded run is the current figure
//! (docs/BENCHMARKS.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use keygate::keys::{Caller, KeyLimits, NewKeyRequest, Service};
use keygate::scope::{Audience, ScopeSet};
use keygate::users::{NewUserInput, create_user};
use keygate::{Application, Config, app, resource_servers};

struct Key {
    id: String,
    secret: String,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too,
    // as a one-second smoke test that the path still works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(if measuring { 5 } else { 1 });
    let cold_keys = if measuring { 20 } else { 2 };
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, engine) = match std::env::var("KEYGATE_BENCH_POSTGRES_URL") {
        Ok(url) => (url, "PostgreSQL"),
        Err(_) => (
            format!("sqlite://{}", dir.path().join("bench.db").display()),
            "SQLite",
        ),
    };
    let vars: HashMap<String, String> = [
        ("KEYGATE_DATABASE_URL", database_url.clone()),
        ("KEYGATE_LISTEN", "127.0.0.1:0".into()),
        ("KEYGATE_SECRET_KEY", "ab".repeat(32)),
        (
            "KEYGATE_MAIL_DIR",
            dir.path().join("mail").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_vars(&vars).expect("config");
    let application = Application::build(config.clone())
        .await
        .expect("server starts");
    let url = format!("http://127.0.0.1:{}/oauth/token", application.port());
    let pool = application.pool().clone();
    tokio::spawn(application.run_until_stopped());

    let keys = tokio::task::spawn_blocking(move || setup(&config, cold_keys + 1))
        .await
        .expect("setup");
    let (warm, cold) = keys.split_first().expect("keys");

    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    let purpose = if measuring {
        ""
    } else {
        " (smoke run, not a measurement)"
    };
    println!("keygate token endpoint, {engine}, {build}, loopback HTTP/1.1{purpose}");
    println!(
        "{} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let client = reqwest::Client::new();
    // Warm-up: first request pays argon2, later ones hit the cache.
    for _ in 0..200 {
        request(&client, &url, warm).await;
    }

    let (count, latencies) = run_for(Duration::from_secs(seconds), 1, &url, warm).await;
    report("warm, 1 client", count, seconds, latencies);
    let (count, latencies) = run_for(Duration::from_secs(seconds), 32, &url, warm).await;
    report("warm, 32 clients", count, seconds, latencies);

    let mut cold_latencies = Vec::new();
    for key in cold {
        let started = Instant::now();
        request(&client, &url, key).await;
        cold_latencies.push(started.elapsed());
    }
    cold_latencies.sort();
    println!(
        "cold (argon2), first request of {} keys: p50 {:.2} ms, max {:.2} ms",
        cold_latencies.len(),
        ms(cold_latencies[cold_latencies.len() / 2]),
        ms(*cold_latencies.last().expect("latencies")),
    );
    // Nothing of the pool may be logging in while the process exits.
    keygate::db::close(&pool, Duration::from_secs(10));
}

/// A user, an API, and `n` keys, written through keygate's own functions.
fn setup(config: &Config, n: usize) -> Vec<Key> {
    let (mut conn, _) = app::open_connection(config).expect("database");
    let now = Utc::now();
    let email = format!("bench-{}@example.com", uuid::Uuid::new_v4().simple());
    create_user(
        &mut conn,
        NewUserInput {
            email: &email,
            name: "bench",
            role: "member",
            password_hash: None,
        },
        "bench",
        now,
    )
    .expect("user");
    let api = Audience::parse(&format!(
        "https://api-{}.example.com",
        uuid::Uuid::new_v4().simple()
    ))
    .expect("audience");
    let scopes = ScopeSet::parse("read write").expect("scopes");
    let issuer = "http://127.0.0.1:8080";
    resource_servers::create_api(&mut conn, (&api, issuer), "bench", &scopes, "bench", now)
        .expect("api");
    let service = Service::new(
        issuer,
        KeyLimits {
            max_lifetime: config.key_max_lifetime,
            expiry_warning: config.expiry_warning,
            max_keys_per_user: None,
        },
    );
    let tagger = keygate::signing::MasterKey::generate().token_hasher();
    (0..n)
        .map(|i| {
            let request = NewKeyRequest {
                owner: keygate::keys::KeyOwner::person(&email),
                name: &format!("bench-{i}"),
                description: "",
                scopes: scopes.clone(),
                audiences: vec![api.clone()],
                expires_in: None,
                envelope: Default::default(),
                credential: keygate::keys::NewCredential::Secret,
            };
            let issued = service
                .create(&mut conn, &Caller::CommandLine, request, &tagger, now)
                .expect("key");
            Key {
                id: issued.client_id.to_string(),
                secret: issued
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_owned())
                    .expect("a secret"),
            }
        })
        .collect()
}

async fn request(client: &reqwest::Client, url: &str, key: &Key) {
    let response = client
        .post(url)
        .basic_auth(&key.id, Some(&key.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200, "token request failed");
    response.bytes().await.expect("body");
}

async fn run_for(length: Duration, clients: usize, url: &str, key: &Key) -> (usize, Vec<Duration>) {
    let deadline = Instant::now() + length;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, key) = (
                url.to_owned(),
                Key {
                    id: key.id.clone(),
                    secret: key.secret.clone(),
                },
            );
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let started = Instant::now();
                    request(&client, &url, &key).await;
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("client task"));
    }
    (all.len(), all)
}

fn report(label: &str, count: usize, seconds: u64, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{label}: {:.0} tokens/s ({count} in {seconds} s), latency p50 {:.3} ms, p99 {:.3} ms",
        count as f64 / seconds as f64,
        ms(at(0.50)),
        ms(at(0.99)),
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
