//! The console's pages from the templates under `templates/console/`,
//! embedded in the binary like the emails' templates. Every value is
//! HTML-escaped (the templates are `.html`), and a missing variable fails the
//! rendering instead of printing nothing.

use std::sync::LazyLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/", $path)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = embedded!(
    "console/base.html",
    "console/error.html",
    "console/status.html",
    "console/owner.html",
    "console/sign_in.html",
    "console/sign_in_code.html",
    "console/security.html",
    "console/recovery_codes.html",
    "console/forgot_password.html",
    "console/set_password.html",
    "console/keys.html",
    "console/key_new.html",
    "console/key_secret.html",
    "console/key_detail.html",
    "console/key_revoke.html",
    "console/people.html",
    "console/audit.html",
    "console/apis.html",
    "console/roles.html",
    "console/key_transfer.html",
    "console/teams.html",
    "console/team.html",
    "console/requests.html",
    "console/person_disable.html",
    "console/webhooks.html",
    "console/webhook.html",
    "console/webhook_secret.html",
    "console/webhook_remove.html",
    "console/webhook_events.html",
    "console/webhook_state.html",
    "console/federations.html",
    "console/federation_remove.html",
);

/// `{{ at | when }}`: an RFC 3339 time as people read it, in UTC
/// (`2026-12-01 14:05 UTC`); anything else as it is.
fn when(text: &str) -> String {
    match crate::time::parse_rfc3339(text) {
        Some(at) => at.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => text.to_owned(),
    }
}

/// `{{ text | breakable }}`: an email, a URL or a dotted name, HTML-escaped,
/// with a line-break opportunity (`<wbr>`) before each `.`, `@` and `/`
/// (not inside `://`), so a narrow column wraps it between its parts
/// rather than in the middle of one.
fn breakable(text: &str) -> minijinja::Value {
    let mut html = String::with_capacity(text.len() + 16);
    let mut previous = None;
    for c in text.chars() {
        let joined = matches!(previous, None | Some(':' | '/'));
        if matches!(c, '.' | '@' | '/') && !joined {
            html.push_str("<wbr>");
        }
        let mut buffer = [0u8; 4];
        html.push_str(&minijinja::HtmlEscape(c.encode_utf8(&mut buffer)).to_string());
        previous = Some(c);
    }
    minijinja::Value::from_safe_string(html)
}

#[derive(Debug, thiserror::Error)]
#[error("rendering the console page {template} failed: {message}")]
pub struct RenderError {
    template: String,
    message: String,
}

fn build_environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    // Lenient only for optional values: `{% if x %}` on an absent `x` is
    // false, but printing an absent value is an error.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("when", when);
    env.add_filter("breakable", breakable);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(|e| RenderError {
            template: (*name).to_owned(),
            message: format!("{e:#}"),
        })?;
    }
    Ok(env)
}

static ENVIRONMENT: LazyLock<Result<Environment<'static>, RenderError>> =
    LazyLock::new(build_environment);

/// Renders `console/{name}.html` with `context`.
pub fn render(name: &str, context: impl Serialize) -> Result<String, RenderError> {
    let env = ENVIRONMENT.as_ref().map_err(|e| RenderError {
        template: e.template.clone(),
        message: e.message.clone(),
    })?;
    let template = format!("console/{name}.html");
    let fail = |e: minijinja::Error| RenderError {
        template: template.clone(),
        message: format!("{e:#}"),
    };
    env.get_template(&template)
        .map_err(fail)?
        .render(context)
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        assert!(
            ENVIRONMENT.as_ref().is_ok(),
            "{:?}",
            ENVIRONMENT.as_ref().err()
        );
    }

    #[test]
    fn every_template_file_is_embedded() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/console");
        let on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".html"))
            .map(|n| format!("console/{n}"))
            .collect();
        for name in on_disk {
            assert!(
                TEMPLATES.iter().any(|(t, _)| *t == name),
                "{name} is not in render::TEMPLATES"
            );
        }
    }

    /// The CSP allows no inline script or style: a template that needs one
    /// would break in the browser, so it fails here first.
    #[test]
    fn no_template_needs_unsafe_inline() {
        let handler = has_event_handler_attribute();
        for (name, source) in TEMPLATES {
            assert!(!source.contains("<style"), "{name} has an inline <style>");
            assert!(!source.contains(" style="), "{name} has a style attribute");
            for (at, _) in source.match_indices("<script") {
                let tag = &source[at..source[at..].find('>').map_or(source.len(), |end| at + end)];
                assert!(tag.contains(" src="), "{name} has an inline <script>");
            }
            assert!(
                !handler(source),
                "{name} has an inline event handler (on...=)"
            );
            assert!(
                !source.contains("javascript:"),
                "{name} has a javascript: URL"
            );
        }
    }

    /// Whether `source` has an attribute like ` onclick=`.
    fn has_event_handler_attribute() -> impl Fn(&str) -> bool {
        |source: &str| {
            source.match_indices(" on").any(|(at, _)| {
                let rest = &source[at + 3..];
                let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
                name_len > 0 && rest[name_len..].starts_with('=')
            })
        }
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when("2026-12-01T14:05:09Z"), "2026-12-01 14:05 UTC");
        assert_eq!(when("soon"), "soon");
    }

    #[test]
    fn breakable_text_breaks_between_its_parts_and_stays_escaped() {
        assert_eq!(
            breakable("carol.doe@example.co.uk").to_string(),
            "carol<wbr>.doe<wbr>@example<wbr>.co<wbr>.uk"
        );
        assert_eq!(
            breakable("https://inventory.example.com/api/v2").to_string(),
            "https:&#x2f;&#x2f;inventory<wbr>.example<wbr>.com<wbr>&#x2f;api<wbr>&#x2f;v2"
        );
        assert_eq!(
            breakable("<b>&\"x\"</b>").to_string(),
            "&lt;b&gt;&amp;&quot;x&quot;&lt;<wbr>&#x2f;b&gt;"
        );
    }

    #[test]
    fn values_are_escaped() {
        let html = render(
            "error",
            minijinja::context! {
                title => "x", heading => "<script>", message => "a & b",
                assets => minijinja::context! { css => "/c", js => "/j" },
                issuer => "http://i",
            },
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("a &amp; b"));
    }
}
