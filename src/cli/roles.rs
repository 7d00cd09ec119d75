use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, parse_scopes, print_json};
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::users;

#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Create or change a role.
    Set {
        /// The role's name.
        name: String,
        /// Space-separated scopes the role's members may give their keys.
        #[arg(long, visible_alias = "scope")]
        scopes: String,
    },
    /// List roles.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: RolesCommand, ctx: &mut Context) -> Result<(), CliError> {
    match command {
        RolesCommand::Set { name, scopes } => {
            let scopes = parse_scopes(&scopes)?;
            let role = users::set_role(ctx.conn(), &name, &scopes, COMMAND_LINE, Utc::now())
                .map_err(AppError::from)?;
            println!("role {} may grant: {}", role.name, role.scopes);
        }
        RolesCommand::List { json } => {
            let roles = users::list_roles(ctx.conn())?;
            if json {
                let shown: Vec<_> = roles
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "name": r.name,
                            "scopes": r.scope_list(),
                            "grants": grants(r),
                            "builtin": r.builtin,
                        })
                    })
                    .collect();
                print_json(&shown)?;
            } else {
                for r in roles {
                    println!("{}\t{}", r.name, grants(&r));
                }
            }
        }
    }
    Ok(())
}

fn grants(role: &users::Role) -> String {
    match (role.grants_all, role.grants_api_scopes) {
        (true, _) => "every scope".into(),
        (false, true) => "every registered API scope".into(),
        _ => role.scopes.clone(),
    }
}
