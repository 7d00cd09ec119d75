//! Password guessing from many addresses (issue 24, finding 4; INTERFACE.md
//! "Safety rules that hold everywhere"): 10 failed sign-ins for one account
//! within 15 minutes, from any addresses, lock it for every browser but one
//! holding its device cookie, until the window ends; audited once.

use chrono::Duration;
use diesel::prelude::*;
use keygate::db::schema::audit_events;
use keygate::jobs::Job;
use reqwest::header::{RETRY_AFTER, SET_COOKIE};
use serde_json::Value;

use crate::both_engines;
use crate::helpers::{Engine, TestApp};

const PASSWORD: &str = "correct horse battery";
/// Any well-formed pre-session CSRF token, repeated in the cookie and the
/// form as the sign-in page makes a browser do.
const CSRF: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// A browser behind the trusted proxy at `from`, posting the sign-in form
/// of the server at `server` with its `device` cookie, if any.
async fn sign_in(
    server: &str,
    (email, password): (&str, &str),
    from: &str,
    device: Option<&str>,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies = format!("keygate-csrf={CSRF}");
    if let Some(device) = device {
        cookies.push_str(&format!("; keygate-device={device}"));
    }
    client
        .post(format!("{server}/sign-in"))
        .header("x-forwarded-for", from)
        .header("cookie", cookies)
        .form(&[
            ("email", email),
            ("password", password),
            ("csrf_token", CSRF),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in from `from` and returns the device cookie the response set,
/// checking how it is set.
async fn device_cookie_of(app: &TestApp, email: &str, from: &str) -> String {
    let response = sign_in(&app.address, (email, PASSWORD), from, None).await;
    assert_eq!(response.status(), 303, "{email} could not sign in");
    let set: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set.iter().any(|c| c.starts_with("keygate-session=")),
        "{set:?}"
    );
    let device = set
        .iter()
        .find(|c| c.starts_with("keygate-device="))
        .unwrap_or_else(|| panic!("no device cookie in {set:?}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=31536000"] {
        assert!(device.contains(attribute), "{device}");
    }
    let value = device["keygate-device=".len()..].split(';').next().unwrap();
    value.to_owned()
}

/// The (actor, target, details) of every audit event of `action`.
fn audited(app: &TestApp, action: &str) -> Vec<(String, String, Value)> {
    let mut conn = app.db();
    audit_events::table
        .filter(audit_events::action.eq(action))
        .select((
            audit_events::actor,
            audit_events::target,
            audit_events::details,
        ))
        .load::<(String, String, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|(actor, target, details)| (actor, target, serde_json::from_str(&details).unwrap()))
        .collect()
}

async fn assert_locked(response: reqwest::Response, why: &str) {
    assert_eq!(response.status(), 429, "{why}");
    let retry: i64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((850..=900).contains(&retry), "{why}: Retry-After {retry}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Too many failed sign-ins. Try again in 15 minutes."),
        "{why}: {page}"
    );
}

/// An app behind a trusted proxy (127.0.0.1) where alice has a password.
async fn behind_a_proxy_with_alice(engine: Engine) -> TestApp {
    let app = TestApp::builder(engine)
        .vars(&[("KEYGATE_TRUSTED_PROXIES", "127.0.0.1")])
        .jobs_on_demand()
        .start()
        .await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    app
}

/// Behind a trusted proxy, with two servers on one database, as a
/// load-balanced deployment.
async fn guessing_from_many_addresses_locks_out_all_but_the_owners_browser(engine: Engine) {
    let app = behind_a_proxy_with_alice(engine).await;
    let servers = [app.address.clone(), app.spawn_sibling().await];
    let at = &app.address;
    app.add_person("bob@example.com", "member", PASSWORD).await;
    let alice_device = device_cookie_of(&app, "alice@example.com", "198.51.100.1").await;
    let bob_device = device_cookie_of(&app, "bob@example.com", "198.51.100.2").await;

    // Ten addresses, one wrong password each, to either server: no address
    // reaches its own limit.
    for n in 1..=10 {
        let from = format!("203.0.113.{n}");
        let wrong = ("alice@example.com", "wrong password!");
        let response = sign_in(&servers[n % 2], wrong, &from, None).await;
        assert_eq!(response.status(), 401, "attempt {n}");
    }
    // The eleventh, from a new address, is refused even with the right password.
    let right = ("alice@example.com", PASSWORD);
    assert_locked(
        sign_in(at, right, "203.0.113.11", None).await,
        "new address",
    )
    .await;
    // Another account's device cookie, or a forged one, changes nothing.
    assert_locked(
        sign_in(at, right, "203.0.113.12", Some(&bob_device)).await,
        "bob's device cookie",
    )
    .await;
    let (nonce, mac) = alice_device.split_once('.').unwrap();
    let flipped = if mac.starts_with('0') { "1" } else { "0" };
    for forged in [
        format!("{nonce}.{flipped}{}", &mac[1..]),
        format!("{}.{mac}", bob_device.split_once('.').unwrap().0),
        nonce.to_owned(),
    ] {
        assert_locked(
            sign_in(at, right, "203.0.113.13", Some(&forged)).await,
            &forged,
        )
        .await;
    }
    // The owner's browser still signs in, from any address; so does anyone
    // else's account.
    let owner = sign_in(at, right, "203.0.113.14", Some(&alice_device)).await;
    assert_eq!(owner.status(), 303);
    let bob = sign_in(at, ("bob@example.com", PASSWORD), "203.0.113.15", None).await;
    assert_eq!(bob.status(), 303);

    // Audited once, however many attempts were refused.
    let locked = audited(&app, "account.sign_in_locked");
    assert_eq!(locked.len(), 1, "{locked:?}");
    let (actor, target, details) = &locked[0];
    assert_eq!(
        (actor.as_str(), target.as_str()),
        ("keygate", "alice@example.com")
    );
    assert_eq!(details["reason"], "too_many_failed_sign_ins", "{details}");
    assert!(!app.dump_database().contains(&alice_device));

    // Pruning ended windows of the per-address counts keeps this longer one.
    app.advance_clock(Duration::minutes(5));
    app.run_job(Job::ThrottlePrune).await;
    let pruned = sign_in(&servers[1], right, "203.0.113.16", None).await;
    assert_eq!(pruned.status(), 429);

    // The window ends: the right password works again from anywhere.
    app.advance_clock(Duration::minutes(10) + Duration::seconds(1));
    let later = sign_in(at, right, "203.0.113.17", None).await;
    assert_eq!(later.status(), 303);
}

/// A wrong password from the owner's browser counts against that browser,
/// not toward the account's lockout: a guesser who then tries ten more
/// times from elsewhere is locked out only at their own tenth.
async fn the_owners_mistakes_do_not_feed_the_lockout(engine: Engine) {
    let app = behind_a_proxy_with_alice(engine).await;
    let at = &app.address;
    let device = device_cookie_of(&app, "alice@example.com", "198.51.100.1").await;
    let wrong = ("alice@example.com", "wrong password!");
    for n in 1..=4 {
        let from = format!("198.51.100.{}", n + 1);
        assert_eq!(sign_in(at, wrong, &from, Some(&device)).await.status(), 401);
    }
    for n in 1..=9 {
        let from = format!("203.0.113.{n}");
        assert_eq!(sign_in(at, wrong, &from, None).await.status(), 401, "{n}");
    }
    let right = ("alice@example.com", PASSWORD);
    assert_eq!(sign_in(at, right, "203.0.113.20", None).await.status(), 303);
    assert_eq!(sign_in(at, wrong, "203.0.113.10", None).await.status(), 401);
    assert_locked(sign_in(at, right, "203.0.113.21", None).await, "tenth").await;
    assert_eq!(
        sign_in(at, right, "203.0.113.22", Some(&device))
            .await
            .status(),
        303
    );
}

/// Thirty guesses sent at once from thirty addresses: each attempt is
/// counted before its password is checked, so no more than ten are checked.
async fn a_burst_of_guesses_gets_no_more_checks_than_the_limit(engine: Engine) {
    let app = behind_a_proxy_with_alice(engine).await;
    let mut burst = tokio::task::JoinSet::new();
    for n in 1..=30 {
        let server = app.address.clone();
        burst.spawn(async move {
            let from = format!("203.0.113.{n}");
            let wrong = ("alice@example.com", "wrong password!");
            sign_in(&server, wrong, &from, None).await.status().as_u16()
        });
    }
    let mut statuses = burst.join_all().await;
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20,
        "{statuses:?}"
    );
    let right = ("alice@example.com", PASSWORD);
    assert_locked(
        sign_in(&app.address, right, "203.0.113.31", None).await,
        "after",
    )
    .await;
    assert_eq!(audited(&app, "account.sign_in_locked").len(), 1);
}

both_engines!(
    guessing_from_many_addresses_locks_out_all_but_the_owners_browser,
    the_owners_mistakes_do_not_feed_the_lockout,
    a_burst_of_guesses_gets_no_more_checks_than_the_limit,
);
