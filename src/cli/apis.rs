use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, parse_scopes, print_json};
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::resource_servers;
use crate::scope::Audience;

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
        ApisCommand::List { json } => {
            let list = resource_servers::list_apis(ctx.conn())?;
            if json {
                print_json(&list)?;
            } else {
                for api in list {
                    println!("{}\t{}\t{}", api.identifier, api.name, api.scopes);
                }
            }
        }
    }
    Ok(())
}
