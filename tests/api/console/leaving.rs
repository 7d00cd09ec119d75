//! Someone leaves (INTERFACE.md "Teams, transfers and approvals"), walked
//! in a real headless Chromium (see `browser`): an admin makes a team,
//! disables a person on the page that lists their live keys and gives the
//! keys to the team in the same step (refused first, naming the key, with
//! nothing changed), and the keys keep getting tokens; a member of the team
//! then gives one on to a person from the key's page. Every page at 1280
//! and 390 px, checked by axe-core.

use fantoccini::Locator;

use super::{PASSWORD, sign_in};
use crate::browser::Browser;
use crate::helpers::{Engine, Key, KeySpec, TestApp};

const ADMIN: &str = "root@example.com";
const BOB: &str = "bob@example.com";
const CAROL: &str = "carol@example.com";
const BILLING: &str = "https://billing.example.com";

async fn gets_a_token(app: &TestApp, key: &Key) -> u16 {
    app.token_for(key, &[("grant_type", "client_credentials")])
        .await
        .status()
        .as_u16()
}

/// On the confirmation page: "give them all to a team", `team`, disable.
async fn give_keys_to_team(admin: &Browser, team: &str) {
    admin.click("input[name='keys'][value='team']").await;
    admin
        .click(&format!("#to_team option[value='{team}']"))
        .await;
    admin
        .follow_confirming("form[action='/admin/people/disable'] button.danger")
        .await;
}

async fn an_admin_disables_a_person_and_gives_their_keys_to_a_team(engine: Engine) {
    let app = TestApp::builder(engine).jobs_on_demand().start().await;
    let shots = |page: &str| format!("{page}-{}", format!("{engine:?}").to_lowercase());
    let at = |path: &str| format!("{}{path}", app.address);
    app.add_api(BILLING, "Billing", "invoices:read invoices:write")
        .await;
    app.set_role("readers", "invoices:read").await;
    for (email, role) in [(ADMIN, "admin"), (BOB, "member"), (CAROL, "member")] {
        app.add_person(email, role, PASSWORD).await;
    }
    let sync = app
        .create_key(
            KeySpec::new(BOB, "billing-sync")
                .scopes("invoices:read invoices:write")
                .expires_in("90d"),
        )
        .await;
    let report = app
        .create_key(KeySpec::new(BOB, "nightly-report").scopes("invoices:read"))
        .await;
    // Used once: the confirmation shows when and from where.
    assert_eq!(gets_a_token(&app, &sync).await, 200);

    let admin = Browser::start().await;
    sign_in(&admin, &app, ADMIN).await;

    // A team whose role grants reading only; a bad name first, refused
    // beside its field with what was typed kept.
    admin.goto(&at("/admin/teams")).await;
    assert!(admin.body_text().await.contains("No team yet"));
    admin.capture(&shots("teams-empty")).await;
    admin.fill("#team-name", "Billing Team").await;
    admin.click("#team-role option[value='readers']").await;
    admin.follow("form[action='/admin/teams'] button").await;
    assert!(
        admin
            .text("#team-name-error")
            .await
            .contains("not a valid team name")
    );
    assert!(
        admin
            .exists("#team-role option[value='readers']:checked")
            .await
    );
    admin.capture(&shots("teams-create-error")).await;
    admin.fill("#team-name", "billing").await;
    admin
        .fill("#team-notify", "billing-alerts@example.com")
        .await;
    admin.follow("form[action='/admin/teams'] button").await;
    assert_eq!(
        admin.path().await,
        "/admin/teams/billing?notice=team-created"
    );

    // Its members: an unknown address is refused beside the field.
    admin.fill("#member-email", "nobody@example.com").await;
    admin.follow("form.add-member button").await;
    assert!(
        admin
            .text("#member-email-error")
            .await
            .contains("No user with email nobody@example.com")
    );
    admin.capture(&shots("team-member-error")).await;
    admin.fill("#member-email", CAROL).await;
    admin.follow("form.add-member button").await;
    assert_eq!(
        admin.path().await,
        "/admin/teams/billing?notice=member-added"
    );
    assert!(admin.text("ul.members").await.contains(CAROL));
    admin.capture(&shots("team")).await;

    // Disabling bob: his row counts two live keys, and the confirmation
    // lists them with their last use.
    admin.goto(&at("/admin/people")).await;
    let bob_row = format!("//tr[.//strong[text()='{BOB}']]");
    let live = admin
        .client
        .find(Locator::XPath(&format!(
            "{bob_row}//td[@data-label='Live keys']"
        )))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(live.starts_with('2'), "{live}");
    let disable = admin
        .client
        .find(Locator::XPath(&format!(
            "{bob_row}//a[contains(., 'Disable')]"
        )))
        .await
        .unwrap();
    admin.follow_element(disable, false).await;
    assert_eq!(
        admin.path().await,
        "/admin/people/disable?email=bob%40example.com"
    );
    let page = admin.body_text().await;
    for shown in [
        "2 live keys stop",
        "billing-sync",
        "nightly-report",
        "127.0.0.1",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    admin.capture(&shots("person-disable")).await;

    // To the team: refused, its role may not grant invoices:write; the
    // refusal names the key, and nothing changed.
    give_keys_to_team(&admin, "billing").await;
    let refusal = admin.text("#to-team-error").await;
    assert!(
        refusal.contains("billing-sync")
            && refusal.contains(&sync.client_id)
            && refusal.contains("invoices:write"),
        "{refusal}"
    );
    assert!(
        admin
            .exists("input[name='keys'][value='team']:checked")
            .await
    );
    admin.capture(&shots("person-disable-refused")).await;
    for key in [&sync, &report] {
        let listed = app.listed_key(&key.client_id).await;
        assert_eq!(
            (&listed["owner"], &listed["status"]),
            (&BOB.into(), &"active".into())
        );
    }
    assert_eq!(gets_a_token(&app, &sync).await, 200, "bob is not disabled");

    // The team's role, changed on its page; the same step then succeeds.
    admin.goto(&at("/admin/teams/billing")).await;
    admin.click("#role option[value='member']").await;
    admin
        .follow("form[action='/admin/teams/billing'] button")
        .await;
    assert_eq!(admin.path().await, "/admin/teams/billing?notice=saved");
    admin
        .goto(&at("/admin/people/disable?email=bob%40example.com"))
        .await;
    give_keys_to_team(&admin, "billing").await;
    assert_eq!(
        admin.path().await,
        "/admin/people?notice=disabled-transferred"
    );
    admin.capture(&shots("people-after-transfer")).await;

    // Bob is out; his keys are the team's, and they keep getting tokens.
    for key in [&sync, &report] {
        let listed = app.listed_key(&key.client_id).await;
        assert!(listed["owner"].is_null(), "{listed}");
        assert_eq!(
            (&listed["team"], &listed["status"]),
            (&"billing".into(), &"active".into())
        );
        assert_eq!(gets_a_token(&app, key).await, 200);
    }
    let bob = Browser::start().await;
    sign_in(&bob, &app, BOB).await;
    assert!(bob.path().await.starts_with("/sign-in"));
    bob.close().await;
    admin.goto(&at("/admin/teams")).await;
    let row = admin.text("table.teams tbody tr").await;
    assert!(row.contains("billing") && row.contains(CAROL), "{row}");
    assert_eq!(admin.text("td[data-label='Live keys']").await, "2");
    admin.capture(&shots("teams")).await;
    admin.goto(&at(&format!("/keys/{}", sync.client_id))).await;
    let facts = admin.text("dl.facts").await;
    assert!(
        facts.contains("Team billing") && facts.contains("command line"),
        "{facts}"
    );
    admin.close().await;

    // Carol, of the team, sees its keys as hers, and gives one on to a
    // person: an unknown one first, refused beside the field.
    let carol = Browser::start().await;
    sign_in(&carol, &app, CAROL).await;
    let list = carol.body_text().await;
    assert!(
        list.contains("billing-sync") && list.contains("Team billing"),
        "{list}"
    );
    carol.capture(&shots("keys-team")).await;
    carol
        .goto(&at(&format!("/keys/{}", report.client_id)))
        .await;
    carol.capture(&shots("key-detail-team")).await;
    carol
        .follow(&format!("a[href='/keys/{}/transfer']", report.client_id))
        .await;
    assert!(carol.body_text().await.contains("stay the same"));
    carol.capture(&shots("key-transfer")).await;
    let transfer = format!("form[action='/keys/{}/transfer'] button", report.client_id);
    carol.fill("#to_email", "nobody@example.com").await;
    carol.follow_confirming(&transfer).await;
    assert!(
        carol
            .text("#to-email-error")
            .await
            .contains("No user with email nobody@example.com")
    );
    carol.capture(&shots("key-transfer-refused")).await;
    assert_eq!(app.listed_key(&report.client_id).await["team"], "billing");
    carol.fill("#to_email", CAROL).await;
    carol.fill("#reason", "the report is mine now").await;
    carol.follow_confirming(&transfer).await;
    assert_eq!(
        carol.path().await,
        format!("/keys/{}?notice=transferred", report.client_id)
    );
    assert!(carol.text("dl.facts").await.contains(CAROL));
    carol.capture(&shots("key-transferred")).await;
    let listed = app.listed_key(&report.client_id).await;
    assert_eq!(
        (&listed["owner"], &listed["team"]),
        (&CAROL.into(), &serde_json::Value::Null)
    );
    assert_eq!(gets_a_token(&app, &report).await, 200);
    carol.close().await;
}

crate::both_engines!(an_admin_disables_a_person_and_gives_their_keys_to_a_team);
