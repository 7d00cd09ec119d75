use std::io::Read;

use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, print_json};
use crate::audit::COMMAND_LINE;
use crate::keys::secret::hash_password;
use crate::users::{self, MEMBER_ROLE, NewUserInput};

const MIN_PASSWORD_LEN: usize = 12;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user.
    Add {
        /// The user's email: where their keys' emails go.
        email: String,
        /// The user's role (built in: admin, member).
        #[arg(long, default_value = MEMBER_ROLE)]
        role: String,
        /// Read a console password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List users.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: the user's keys stop working at once.
    Disable {
        /// The user's email.
        email: String,
    },
    /// Enable a disabled user again: their keys that have not expired or
    /// been revoked work again.
    Enable {
        /// The user's email.
        email: String,
    },
}

pub fn run(command: UsersCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        UsersCommand::Add {
            email,
            role,
            password_stdin,
            name,
        } => {
            let password_hash = if password_stdin {
                Some(read_password()?)
            } else {
                None
            };
            let user = users::create_user(
                ctx.conn(),
                NewUserInput {
                    email: &email,
                    name: &name,
                    role: &role,
                    password_hash,
                },
                COMMAND_LINE,
                now,
            )?;
            println!("added user {} with role {}", user.email, user.role);
        }
        UsersCommand::List { json } => {
            let list = users::list_users(ctx.conn())?;
            if json {
                print_json(&list)?;
            } else {
                for u in list {
                    let state = if u.disabled { "disabled" } else { "active" };
                    println!("{}\t{}\t{}\t{}", u.email, u.role, state, u.name);
                }
            }
        }
        UsersCommand::Disable { email } => {
            let user = users::set_user_disabled(ctx.conn(), &email, true, COMMAND_LINE, now)?;
            println!("disabled user {}; their keys no longer work", user.email);
        }
        UsersCommand::Enable { email } => {
            let user = users::set_user_disabled(ctx.conn(), &email, false, COMMAND_LINE, now)?;
            println!("enabled user {}; their live keys work again", user.email);
        }
    }
    Ok(())
}

/// One line from stdin, hashed at once; the clear password is not kept.
fn read_password() -> Result<String, CliError> {
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(CliError::Usage(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    hash_password(password).map_err(|e| CliError::Usage(format!("cannot hash the password: {e}")))
}
