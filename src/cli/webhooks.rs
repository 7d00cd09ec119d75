//! `keygate webhooks`: register, list and remove the endpoints keygate sends
//! signed events to, and queue a test event for one. The running server
//! makes the deliveries.

use chrono::Utc;
use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Context, print_json};
use crate::app;
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::webhooks::{self, Endpoint, NewEndpoint, WebhookError, WebhookSealer, endpoint};

/// A refusal of the webhooks feature, said in one line.
impl From<WebhookError> for CliError {
    fn from(error: WebhookError) -> Self {
        Self::App(AppError::from(error))
    }
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; its signing secret is printed this once.
    Add {
        /// Where events are sent: an http or https URL, without credentials.
        url: String,
        /// The event types it receives, space-separated, e.g.
        /// "key.created key.revoked" (default: every type, later ones included).
        #[arg(long, value_name = "TYPES")]
        events: Option<Vec<String>>,
        /// What the endpoint is for.
        #[arg(long, default_value = "")]
        description: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List endpoints (never their secrets).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove an endpoint and every delivery queued for it.
    Remove {
        /// The endpoint's ID (see `keygate webhooks list`).
        id: String,
    },
    /// Queue a `webhook.test` event for an endpoint; the running server sends it.
    Test {
        /// The endpoint's ID (see `keygate webhooks list`).
        id: String,
    },
}

/// What `webhooks add --json` prints: the secret, this once.
#[derive(Serialize)]
struct Added<'a> {
    id: &'a str,
    url: &'a str,
    events: &'a [String],
    secret: &'a str,
}

pub fn run(command: WebhooksCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        WebhooksCommand::Add {
            url,
            events,
            description,
            json,
        } => {
            let sealer = WebhookSealer::new(&app::master_key(&ctx.config)?);
            let new = NewEndpoint {
                url: &url,
                events: events.as_deref(),
                description: &description,
            };
            let created = endpoint::create(ctx.conn(), &sealer, new, COMMAND_LINE, now)?;
            let secret = created.secret.reveal();
            let endpoint = &created.endpoint;
            if json {
                print_json(&Added {
                    id: &endpoint.id,
                    url: &endpoint.url,
                    events: &endpoint.events,
                    secret: &secret,
                })?;
            } else {
                println!("added webhook endpoint {}", endpoint.id);
                println!("url:     {}", endpoint.url);
                println!("events:  {}", events_text(endpoint));
                println!("secret:  {}", secret.as_str());
                println!(
                    "The signing secret is shown only once: store it now; deliveries are \
                     signed with it (Standard Webhooks)."
                );
            }
        }
        WebhooksCommand::List { json } => {
            let list = endpoint::list(ctx.conn())?;
            if json {
                print_json(&list)?;
            } else {
                print!("{}", table(&list));
            }
        }
        WebhooksCommand::Remove { id } => {
            let removed = endpoint::remove(ctx.conn(), &id, COMMAND_LINE, now)?;
            println!(
                "removed webhook endpoint {} ({}) and its queued deliveries",
                removed.id, removed.url
            );
        }
        WebhooksCommand::Test { id } => {
            let delivery = webhooks::send_test(ctx.conn(), &id, COMMAND_LINE, now)?;
            println!(
                "queued test delivery {} for webhook endpoint {id}; the running server sends it \
                 (see its deliveries on the console's Webhooks page)",
                delivery.id
            );
        }
    }
    Ok(())
}

/// The event types, or `all` for an endpoint registered for every type.
fn events_text(endpoint: &Endpoint) -> String {
    if endpoint.all_events {
        "all".to_owned()
    } else {
        endpoint.events.join(" ")
    }
}

/// `enabled`, or `off: <reason>`.
fn state_text(endpoint: &Endpoint) -> String {
    if endpoint.enabled {
        "enabled".to_owned()
    } else {
        format!(
            "off: {}",
            endpoint
                .disabled_reason
                .as_deref()
                .unwrap_or("switched off")
        )
    }
}

/// The endpoints as an aligned table under a header; a line saying so when
/// there are none.
fn table(list: &[Endpoint]) -> String {
    if list.is_empty() {
        return "no webhook endpoints (add one with `keygate webhooks add URL`)\n".to_owned();
    }
    let header = ["ID", "URL", "EVENTS", "STATE"].map(str::to_owned);
    let rows: Vec<[String; 4]> = list
        .iter()
        .map(|e| [e.id.clone(), e.url.clone(), events_text(e), state_text(e)])
        .collect();
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn endpoint(id: &str, all: bool, enabled: bool) -> Endpoint {
        Endpoint {
            id: id.to_owned(),
            url: "https://hooks.example.com/k".to_owned(),
            description: String::new(),
            events: vec!["key.created".to_owned(), "key.revoked".to_owned()],
            all_events: all,
            enabled,
            disabled_reason: (!enabled).then(|| "failing for 5 days".to_owned()),
            failing_since: None,
            created_by: COMMAND_LINE.to_owned(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_table_says_all_and_why_an_endpoint_is_off() {
        let text = table(&[endpoint("a1", true, true), endpoint("b2", false, false)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(
            lines[1].contains(" all ") && lines[1].ends_with("enabled"),
            "{text}"
        );
        assert!(lines[2].contains("key.created key.revoked"), "{text}");
        assert!(lines[2].ends_with("off: failing for 5 days"), "{text}");
        assert!(table(&[]).contains("no webhook endpoints"));
    }
}
