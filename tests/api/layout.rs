//! The console at the widths people use it: every page, a member's and an
//! admin's, at 390 px (a phone) and 1280 px (a laptop), looked at as a
//! person would in a real Chromium (see `browser`). No page is wider than
//! the window, no table or menu hides part of itself behind a sideways
//! scroll, every column of every table is in sight, a key's name is not cut
//! in the middle of a word, and a revoked key does not look like an active
//! one. Every page is checked by axe-core at both widths; with
//! `KEYGATE_TEST_SCREENSHOTS=1` it is saved as a screenshot at each too
//! (`target/screenshots/layout-*.png`); the admin pages' phone shots are the
//! ones in `docs/console/`.

use serde_json::Value;

use crate::browser::{Browser, DESKTOP, PHONE};
use crate::helpers::{Engine, Key, KeySpec, TestApp};

const PASSWORD: &str = "a long and quiet password 42";

/// What a person would see go wrong on the page as it is laid out now, one
/// line each: the page wider than the window, a box scrolling its content
/// sideways (a table, the menu), a table cell past its table's visible
/// edge, a cell squeezed into a thin column of many short lines on a laptop,
/// a word of a key's name split over two lines (a break after a hyphen is a
/// word's own).
const PROBLEMS: &str = r#"
const problems = [];
const width = document.documentElement.clientWidth;
const page = document.documentElement.scrollWidth;
if (page > width) problems.push(`the page is ${page}px wide in a ${width}px window`);
const named = el => {
  const label = el.getAttribute('data-label') || el.getAttribute('aria-label');
  return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${label ? ` "${label}"` : ''}`;
};
for (const el of document.querySelectorAll('body *')) {
  if (el.matches('input, select, textarea, option') || el.clientWidth <= 1) continue;
  const overflow = getComputedStyle(el).overflowX;
  if (overflow !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
    problems.push(`${named(el)} scrolls sideways: ${el.scrollWidth}px of content in ${el.clientWidth}px`);
  }
}
for (const table of document.querySelectorAll('table')) {
  const box = (table.closest('.table-wrap') || table).getBoundingClientRect();
  for (const cell of table.querySelectorAll('th, td')) {
    const head = cell.closest('thead');
    if (head && head.getBoundingClientRect().width <= 1) continue;
    const r = cell.getBoundingClientRect();
    if (r.right > box.right + 1 || r.left < box.left - 1) {
      problems.push(`the ${named(cell)} cell "${cell.textContent.trim().slice(0, 30)}" is outside its table (${Math.round(r.left)}-${Math.round(r.right)}px, table ${Math.round(box.left)}-${Math.round(box.right)}px)`);
    }
  }
}
if (width >= 1000) {
  for (const cell of document.querySelectorAll('td')) {
    const tops = [];
    const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    while (texts.nextNode()) {
      const text = texts.currentNode;
      if (!text.textContent.trim() || !text.parentElement.checkVisibility()) continue;
      const range = document.createRange();
      range.selectNodeContents(text);
      for (const r of range.getClientRects()) tops.push(r.top);
    }
    tops.sort((a, b) => a - b);
    const lines = tops.filter((top, i) => i === 0 || top - tops[i - 1] > 4).length;
    const room = cell.clientWidth;
    if (lines > 6 && room < 256) {
      problems.push(`the ${named(cell)} cell runs over ${lines} lines in ${room}px`);
    }
  }
}
for (const el of document.querySelectorAll('.key-name, h1')) {
  for (const node of el.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE) continue;
    const text = node.textContent;
    let at = 0;
    for (const word of text.split(/\s+|(?<=-)/)) {
      const start = text.indexOf(word, at);
      at = start + word.length;
      if (!word) continue;
      const range = document.createRange();
      range.setStart(node, start);
      range.setEnd(node, start + word.length);
      const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      if (lines.size > 1) problems.push(`"${word}" in ${named(el)} is cut over ${lines.size} lines`);
    }
  }
}
return problems;
"#;

/// Has axe-core check the page at both widths (saving it when screenshots
/// are asked for), then returns
/// what is wrong with its layout at each, prefixed with the page and width.
async fn look_at(browser: &Browser, page: &str) -> Vec<String> {
    browser.capture(page).await;
    let mut problems = Vec::new();
    for (size, width) in [(PHONE, "390 px"), (DESKTOP, "1280 px")] {
        browser.resize(size).await;
        let found = browser.client.execute(PROBLEMS, vec![]).await.unwrap();
        problems.extend(
            found
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{page} at {width}: {}", p.as_str().unwrap_or_default())),
        );
    }
    browser.resize(DESKTOP).await;
    problems
}

async fn sign_in(browser: &Browser, app: &TestApp, email: &str, password: &str) {
    browser.goto(&format!("{}/sign-in", app.address)).await;
    browser.fill("#email", email).await;
    browser.fill("#password", password).await;
    browser.follow("button[type=submit]").await;
}

/// Two APIs (one with a long audience), an admin, members with short and
/// long addresses, one invited, one disabled, one who may not create keys;
/// keys active, expiring, revoked, used, with long names and many scopes.
async fn a_busy_keygate(app: &TestApp) -> Vec<Key> {
    for (identifier, name, scopes) in [
        (
            "https://billing.example.com",
            "Billing",
            "invoices:read invoices:write refunds:write",
        ),
        (
            "https://inventory.internal.example.com/api/v2",
            "Inventory service",
            "stock:read stock:write warehouses:admin",
        ),
    ] {
        app.cli_ok(&[
            "apis", "add", identifier, "--name", name, "--scopes", scopes,
        ])
        .await;
    }
    app.add_person("root@example.com", "admin", PASSWORD).await;
    app.add_person("alice@example.com", "member", PASSWORD)
        .await;
    let long = "carol.long-surname@subsidiary.example.co.uk";
    app.add_person(long, "member", PASSWORD).await;
    app.add_person("dave@example.com", "member", PASSWORD).await;
    app.cli_ok(&["users", "add", "bob@example.com", "--name", "Bob"])
        .await;
    let mut keys = Vec::new();
    for spec in [
        KeySpec::new("alice@example.com", "billing-sync")
            .scopes("invoices:read invoices:write")
            .audience("https://billing.example.com")
            .expires_in("90d"),
        KeySpec::new("alice@example.com", "nightly report exporter")
            .scopes("invoices:read")
            .expires_in("3d"),
        KeySpec::new("alice@example.com", "legacy-importer")
            .scopes("stock:read stock:write")
            .allow_from("203.0.113.0/24, 2001:db8::/32"),
        KeySpec::new("root@example.com", "keygate-admin-bot").scopes("keygate:admin"),
        KeySpec::new(long, "warehouse sync (production, eu-west-1)")
            .scopes("stock:read stock:write warehouses:admin invoices:read")
            .audience("https://inventory.internal.example.com/api/v2")
            .audience("https://billing.example.com"),
    ] {
        keys.push(app.create_key(spec).await);
    }
    let used = app
        .token_for(&keys[0], &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(used.status(), 200);
    app.cli_ok(&[
        "keys",
        "revoke",
        &keys[2].client_id,
        "--reason",
        "replaced by billing-sync after the move to the new importer",
    ])
    .await;
    app.cli_ok(&["users", "disable", long]).await;
    app.cli_ok(&[
        "users",
        "set",
        "dave@example.com",
        "--can-create-keys",
        "false",
    ])
    .await;
    // A team with a key of its own, and a key waiting for approval.
    app.add_team(
        "warehouse-ops",
        "member",
        &["alice@example.com", "dave@example.com"],
    )
    .await;
    app.set_approval_scopes("https://billing.example.com", "refunds:write")
        .await;
    for spec in [
        KeySpec::for_team("warehouse-ops", "stock level sync to the ERP (hourly)")
            .scopes("stock:read stock:write")
            .requested_by("alice@example.com"),
        KeySpec::new("alice@example.com", "refund-approver")
            .scopes("refunds:write invoices:read")
            .audience("https://billing.example.com")
            .requested_by("alice@example.com"),
    ] {
        keys.push(app.create_key(spec).await);
    }
    assert_eq!(keys[6].json["status"], "pending");
    keys
}

/// Two webhook endpoints: one for two event types whose test deliveries
/// failed (nothing listens on its port), so it is failing and they wait to
/// be tried again; one with a long URL for every type, switched off.
/// Returns the first's ID.
async fn some_webhooks(app: &TestApp) -> String {
    let (failing, _) = crate::webhooks::add_endpoint(
        app,
        "http://127.0.0.1:9/keygate/hooks",
        Some(vec!["key.created".into(), "key.revoked".into()]),
    )
    .await;
    let (off, _) = crate::webhooks::add_endpoint(
        app,
        "https://hooks.internal.example.com/services/keygate/T0001/B0002/events",
        None,
    )
    .await;
    {
        let (now, mut conn) = (app.clock.now(), app.db());
        for _ in 0..2 {
            keygate::webhooks::send_test(&mut conn, &failing, "root@example.com", now)
                .expect("a test event");
        }
        let change = keygate::webhooks::EndpointChange {
            enabled: Some(false),
            ..Default::default()
        };
        keygate::webhooks::endpoint::update(&mut conn, &off, &change, "root@example.com", now)
            .expect("switched off");
    }
    // Deliveries to one endpoint go in order: the first is tried (and
    // fails), the second waits behind it, not yet tried.
    assert_eq!(app.run_job(keygate::jobs::Job::WebhookDelivery).await, 1);
    failing
}

/// Every page a member, an admin and someone signed out can reach, at both
/// widths, fits its window and shows every column of its tables.
async fn every_page_fits_a_phone_and_a_laptop(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let keys = a_busy_keygate(&app).await;
    let webhook = format!("/admin/webhooks/{}", some_webhooks(&app).await);
    let webhook_remove = format!("{webhook}/remove");
    let shot = |page: &str| format!("layout-{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    let mut problems = Vec::new();

    // Signed out.
    let visitor = Browser::start().await;
    let invitation = app.newest_link_token("bob@example.com");
    for (path, name) in [
        ("/sign-in".to_owned(), "sign-in"),
        ("/forgot-password".to_owned(), "forgot-password"),
        (format!("/set-password?token={invitation}"), "set-password"),
    ] {
        visitor.goto(&at(&path)).await;
        problems.extend(look_at(&visitor, &shot(name)).await);
    }
    sign_in(
        &visitor,
        &app,
        "alice@example.com",
        "not the password at all",
    )
    .await;
    problems.extend(look_at(&visitor, &shot("sign-in-refused")).await);
    visitor.close().await;

    // A member.
    let member = Browser::start().await;
    sign_in(&member, &app, "alice@example.com", PASSWORD).await;
    let active = format!("/keys/{}", keys[0].client_id);
    let revoked = format!("/keys/{}", keys[2].client_id);
    for (path, name) in [
        ("/keys".to_owned(), "member-keys"),
        ("/keys/new".to_owned(), "member-key-new"),
        (active.clone(), "member-key-detail"),
        (revoked.clone(), "member-key-detail-revoked"),
        (format!("{active}/revoke"), "member-key-revoke"),
        (format!("{active}/transfer"), "member-key-transfer"),
        (
            format!("/keys/{}", keys[5].client_id),
            "member-key-detail-team",
        ),
        (
            format!("/keys/{}", keys[6].client_id),
            "member-key-detail-pending",
        ),
        ("/admin/people".to_owned(), "member-not-allowed"),
        ("/keys/kgc_nosuchkey".to_owned(), "member-not-found"),
    ] {
        member.goto(&at(&path)).await;
        problems.extend(look_at(&member, &shot(name)).await);
    }
    member.goto(&at("/keys/new")).await;
    member.follow("form.card button[type=submit]").await;
    problems.extend(look_at(&member, &shot("member-key-new-errors")).await);
    member.fill("#name", "deploy-bot").await;
    member.click("input[value='invoices:read']").await;
    member.fill("#allowed_networks", "203.0.113.0/24").await;
    member.follow("form.card button[type=submit]").await;
    assert!(member.body_text().await.contains("deploy-bot"));
    problems.extend(look_at(&member, &shot("member-key-secret")).await);

    // A revoked key does not look like an active one: its status in words,
    // its row greyed, its name struck through.
    member.goto(&at("/keys")).await;
    let looks: Value = member
        .client
        .execute(
            "const row = name => [...document.querySelectorAll('tbody tr')]
                 .find(tr => tr.querySelector('.key-name').textContent === name);
             const look = tr => ({
                 status: tr.querySelector('[data-label=Status]').innerText.trim(),
                 background: getComputedStyle(tr.cells[0]).backgroundColor,
                 line: getComputedStyle(tr.querySelector('.key-name')).textDecorationLine });
             return [look(row('billing-sync')), look(row('legacy-importer'))];",
            vec![],
        )
        .await
        .unwrap();
    let (active_row, revoked_row) = (&looks[0], &looks[1]);
    assert!(
        active_row["status"].as_str().unwrap().ends_with("Active"),
        "{looks}"
    );
    assert!(
        revoked_row["status"].as_str().unwrap().ends_with("Revoked"),
        "{looks}"
    );
    assert_ne!(
        active_row["background"], revoked_row["background"],
        "{looks}"
    );
    assert!(
        revoked_row["line"]
            .as_str()
            .unwrap()
            .contains("line-through"),
        "{looks}"
    );
    member.close().await;

    // An admin: every admin page, as the docs show them.
    let admin = Browser::start().await;
    sign_in(&admin, &app, "root@example.com", PASSWORD).await;
    for (path, name) in [
        ("/keys", "admin-my-keys"),
        ("/keys/new", "admin-key-new"),
        ("/admin/people", "admin-people"),
        ("/admin/keys", "admin-keys"),
        ("/admin/keys?status=revoked", "admin-keys-revoked"),
        ("/admin/keys?status=pending", "admin-keys-pending"),
        ("/admin/teams", "admin-teams"),
        ("/admin/teams/warehouse-ops", "admin-team"),
        ("/admin/requests", "admin-requests"),
        (
            "/admin/people/disable?email=alice%40example.com",
            "admin-person-disable",
        ),
        ("/admin/apis", "admin-apis"),
        ("/admin/roles", "admin-roles"),
        ("/admin/audit", "admin-audit"),
        ("/admin/webhooks", "admin-webhooks"),
        ("/admin/federations", "admin-federations"),
        (webhook.as_str(), "admin-webhook"),
        (webhook_remove.as_str(), "admin-webhook-remove"),
    ] {
        admin.goto(&at(path)).await;
        problems.extend(look_at(&admin, &shot(name)).await);
    }
    admin
        .goto(&at(&format!("/keys/{}", keys[4].client_id)))
        .await;
    problems.extend(look_at(&admin, &shot("admin-key-detail")).await);
    // keygate:admin stands apart from the other scopes, saying what it grants.
    admin.goto(&at("/keys/new")).await;
    let warning = admin.text(".check-admin").await;
    assert!(
        warning.contains("keygate:admin") && warning.contains("everything an administrator"),
        "{warning}"
    );
    admin.close().await;

    assert!(
        problems.is_empty(),
        "the console does not fit its window:\n{}",
        problems.join("\n")
    );
}

crate::both_engines!(every_page_fits_a_phone_and_a_laptop);
