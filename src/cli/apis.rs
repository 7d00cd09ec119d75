//! `keygate apis`: register, change and list resource servers, and mark
//! the scopes whose keys need an admin's approval.

use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, or_dash, parse_scopes, print_json};
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::resource_servers::{self, ApiChange};
use crate::scope::{Audience, ScopeSet};

#[derive(Debug, Subcommand)]
pub enum ApisCommand {
    /// Register a resource server by its audience URI.
    Add {
        /// The API's audience URI, such as https://api.example.com.
        identifier: String,
        /// A name people will recognise.
        #[arg(long)]
        name: String,
        /// Space-separated scopes the API understands, such as "read write".
        #[arg(long, visible_alias = "scope")]
        scopes: String,
    },
    /// Change a registered API: its name, its scopes, the scopes whose keys
    /// need an admin's approval; all that is given, or nothing.
    Set {
        /// The API's audience URI.
        identifier: String,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// The scopes the API defines from now on, such as "read write".
        #[arg(long, visible_alias = "scope")]
        scopes: Option<String>,
        /// Scopes a key created by someone who is not an admin may hold
        /// only once an admin approves it, such as "admin billing"; "" for none.
        #[arg(long, value_name = "\"s1 s2\"")]
        approval_scopes: Option<String>,
    },
    /// List registered APIs.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ApisCommand, ctx: &mut Context) -> Result<(), CliError> {
    match command {
        ApisCommand::Add {
            identifier,
            name,
            scopes,
        } => {
            let identifier = Audience::parse(&identifier).map_err(CliError::Usage)?;
            let scopes = parse_scopes(&scopes)?;
            let issuer = ctx.issuer();
            let api = resource_servers::create_api(
                ctx.conn(),
                (&identifier, &issuer),
                &name,
                &scopes,
                COMMAND_LINE,
                Utc::now(),
            )
            .map_err(AppError::from)?;
            println!(
                "registered API {} ({}) with scopes: {}",
                api.identifier, api.name, api.scopes
            );
        }
        ApisCommand::Set {
            identifier,
            name,
            scopes,
            approval_scopes,
        } => {
            let change = ApiChange {
                name,
                scopes: scopes.as_deref().map(parse_scopes).transpose()?,
                approval_scopes: approval_scopes
                    .as_deref()
                    .map(|s| {
                        ScopeSet::parse(s)
                            .map_err(|e| CliError::Usage(format!("--approval-scopes: {e}")))
                    })
                    .transpose()?,
            };
            if change.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --name, --scopes or --approval-scopes".into(),
                ));
            }
            let api = resource_servers::change_api(
                ctx.conn(),
                &identifier,
                &change,
                COMMAND_LINE,
                Utc::now(),
            )
            .map_err(AppError::from)?;
            println!(
                "changed API {} ({}): scopes {}; needing approval: {}",
                api.identifier,
                api.name,
                api.scopes,
                or_dash(Some(api.approval_scopes.as_str()).filter(|s| !s.is_empty()))
            );
        }
        ApisCommand::List { json } => {
            let list = resource_servers::list_apis(ctx.conn())?;
            if json {
                print_json(&list)?;
            } else {
                for api in list {
                    println!(
                        "{}\t{}\t{}\tneeding approval: {}",
                        api.identifier,
                        api.name,
                        api.scopes,
                        or_dash(Some(api.approval_scopes.as_str()).filter(|s| !s.is_empty()))
                    );
                }
            }
        }
    }
    Ok(())
}
