//! The console over plain HTTP, as a browser without JavaScript uses it: a
//! client that signs in through the form and keeps its cookies, the CSRF
//! token read from a page, and the new-key form posted.

use super::PASSWORD;
use crate::helpers::TestApp;

/// The value of the hidden input `name` in a page.
pub(super) fn hidden_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// A browser-like HTTP client signed in as `email`, and its session's CSRF
/// token (read from a page, as a form would).
pub(super) async fn signed_in(app: &TestApp, email: &str) -> (reqwest::Client, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/sign-in", app.address))
        .send()
        .await
        .unwrap();
    let token = hidden_value(&page.text().await.unwrap(), "csrf_token");
    let response = client
        .post(format!("{}/sign-in", app.address))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "{email} could not sign in");
    let page = client
        .get(format!("{}/keys/new", app.address))
        .send()
        .await
        .unwrap();
    let csrf = hidden_value(&page.text().await.unwrap(), "csrf_token");
    (client, csrf)
}

pub(super) async fn add_person(app: &TestApp, email: &str, role: &str) {
    app.add_person(email, role, PASSWORD).await;
}

/// The new-key form sent with `name`, the scope `read` and a 30-day expiry.
pub(super) async fn create_in_console(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    name: &str,
) -> reqwest::Response {
    let fields = [("name", name), ("scope", "read"), ("expires_in", "30d")];
    post_new_key(app, client, csrf, &fields).await
}

/// The new-key form sent with `fields` (a `scope` field per scope), under
/// the session's CSRF token and a fresh form ID.
pub(super) async fn post_new_key(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let form_id: String = keygate::random::alphanumeric(32);
    let mut form = vec![("csrf_token", csrf), ("form_id", &form_id)];
    form.extend_from_slice(fields);
    client
        .post(format!("{}/keys", app.address))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A console form at `path` posted with `fields` under the session's CSRF
/// token, as a browser without JavaScript sends it.
pub(super) async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![("csrf_token", csrf)];
    form.extend_from_slice(fields);
    client
        .post(format!("{}{path}", app.address))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A console page's status and HTML, fetched with the client's session.
pub(super) async fn get_page(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String) {
    let response = client
        .get(format!("{}{path}", app.address))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The text of the element with `id` in a page (its first text, up to the
/// next tag), for a refusal shown beside its field.
pub(super) fn text_of(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} in {html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}
