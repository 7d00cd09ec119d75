use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, or_dash, print_json};
use crate::app::{self, StartupError};
use crate::audit::COMMAND_LINE;
use crate::signing::{self, AtRest};

#[derive(Debug, Subcommand)]
pub enum SigningKeysCommand {
    /// List signing keys: the active one and those still published.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key active at once; the old one stays published
    /// until every token it signed has expired.
    Rotate,
}

pub fn run(command: SigningKeysCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        SigningKeysCommand::List { json } => {
            let keys = signing::list_signing_keys(ctx.conn(), now)?;
            if json {
                print_json(&keys)?;
            } else {
                for k in keys {
                    println!(
                        "{}\t{}\t{}\tcreated {}\tpublished until {}",
                        k.kid,
                        k.alg,
                        k.status,
                        k.created_at,
                        or_dash(k.published_until.as_deref())
                    );
                }
            }
        }
        SigningKeysCommand::Rotate => {
            let master = app::master_key(&ctx.config)?;
            let (alg, ttl) = (ctx.config.signing_alg, ctx.config.token_ttl.as_chrono());
            let kid = signing::rotate_signing_key(
                ctx.conn(),
                &AtRest::new(&master),
                alg,
                ttl,
                now,
                COMMAND_LINE,
            )
            .map_err(StartupError::Signing)?;
            println!(
                "new active signing key {kid} ({alg}); running servers pick it up within seconds"
            );
        }
    }
    Ok(())
}
