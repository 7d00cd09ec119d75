//! `keygate users`: add (with a password, or by invitation), list, disable,
//! enable and change people.

use std::io::Read;

use chrono::Utc;
use clap::Subcommand;

use super::keys::key_line;
use super::{CliError, Context, print_json};
use crate::accounts::{self, Invitation, Password};
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::keys::{Caller, KeyOwner};
use crate::time::rfc3339;
use crate::users::{self, MEMBER_ROLE, NewUserInput, UserChanges};

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user. Without --password-stdin, queue an invitation email with
    /// a one-time link to set a password (printed here too when emails go
    /// to files).
    Add {
        /// The user's email: where their keys' emails go.
        email: String,
        /// The user's role (built in: admin, member).
        #[arg(long, default_value = MEMBER_ROLE)]
        role: String,
        /// Read a console password from standard input instead of inviting.
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
    /// Disable a user: the user's keys and console sessions stop at once,
    /// unless their live keys are transferred in the same step.
    Disable {
        /// The user's email.
        email: String,
        /// First give every live key of theirs to the person with this
        /// email; if one may not go, nothing changes.
        #[arg(long, value_name = "EMAIL", conflicts_with = "transfer_keys_to_team")]
        transfer_keys_to: Option<String>,
        /// First give every live key of theirs to the team with this name;
        /// if one may not go, nothing changes.
        #[arg(long, value_name = "NAME")]
        transfer_keys_to_team: Option<String>,
    },
    /// Enable a disabled user again: their keys that have not expired or
    /// been revoked work again.
    Enable {
        /// The user's email.
        email: String,
    },
    /// Remove a person's second factors (authenticator app) and recovery
    /// codes, for someone who lost their phone: their password alone signs
    /// them in until they set one up again. Audited; the person is emailed.
    #[command(name = "reset-mfa")]
    ResetMfa {
        /// The user's email.
        email: String,
    },
    /// Change a user's role or switch their key creation off or on
    /// (existing keys keep working).
    Set {
        /// The user's email.
        email: String,
        /// The new role.
        #[arg(long)]
        role: Option<String>,
        /// Whether the user may create keys.
        #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
        can_create_keys: Option<bool>,
    },
}

pub fn run(command: UsersCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        UsersCommand::Add {
            email,
            role,
            password_stdin: true,
            name,
        } => {
            let password_hash = Some(read_password(&email)?);
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
            )
            .map_err(AppError::from)?;
            println!("added user {} with role {}", user.email, user.role);
        }
        UsersCommand::Add {
            email,
            role,
            password_stdin: false,
            name,
        } => invite(ctx, &email, &role, &name, now)?,
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
        UsersCommand::Disable {
            email,
            transfer_keys_to,
            transfer_keys_to_team,
        } => {
            let to = match (transfer_keys_to, transfer_keys_to_team) {
                (Some(person), _) => Some(KeyOwner::person(&person)),
                (None, Some(team)) => Some(KeyOwner::team(&team)),
                (None, None) => None,
            };
            disable(ctx, &email, to.as_ref(), now)?;
        }
        UsersCommand::Enable { email } => {
            let user = users::set_user_disabled(ctx.conn(), &email, false, COMMAND_LINE, now)
                .map_err(AppError::from)?;
            println!("enabled user {}; their live keys work again", user.email);
        }
        UsersCommand::ResetMfa { email } => {
            let issuer = ctx.issuer();
            let email = email.trim().to_lowercase();
            let had =
                crate::accounts::factors::reset(ctx.conn(), &issuer, (&email, COMMAND_LINE), now)
                    .map_err(AppError::from)?;
            if had {
                println!(
                    "removed the second factors and recovery codes of {email}; they have been emailed"
                );
            } else {
                println!("{email} has no second factor: nothing to remove");
            }
        }
        UsersCommand::Set {
            email,
            role,
            can_create_keys,
        } => {
            if role.is_none() && can_create_keys.is_none() {
                return Err(CliError::Usage(
                    "nothing to change: give --role NAME or --can-create-keys true|false".into(),
                ));
            }
            let changes = UserChanges {
                disabled: None,
                can_create_keys,
                role: role.as_deref(),
            };
            let user = users::update_user(ctx.conn(), &email, &changes, COMMAND_LINE, now)
                .map_err(AppError::from)?;
            let creation = if user.can_create_keys { "on" } else { "off" };
            println!(
                "updated user {}: role {}, key creation {creation}",
                user.email, user.role
            );
        }
    }
    Ok(())
}

/// Disables the person, with their live keys transferred to `to` in the same
/// transaction; says which keys moved, or which stopped with the account.
fn disable(
    ctx: &mut Context,
    email: &str,
    to: Option<&KeyOwner>,
    now: chrono::DateTime<Utc>,
) -> Result<(), CliError> {
    let service = super::keys::service(ctx);
    let done = service.disable_person(ctx.conn(), &Caller::CommandLine, email, to, now)?;
    let email = &done.user.email;
    match to {
        Some(to) => {
            println!(
                "disabled user {email}; their console sessions no longer work; {} to {to} \
                 (client IDs and secrets unchanged)",
                count(
                    done.transferred.len(),
                    "live key transferred",
                    "live keys transferred"
                )
            );
            for key in &done.transferred {
                println!("  {}", key_line(key));
            }
        }
        None => {
            println!(
                "disabled user {email}; their console sessions no longer work; {} with the \
                 account",
                count(done.stopped.len(), "live key stops", "live keys stop")
            );
            for key in &done.stopped {
                println!("  {}", key_line(key));
            }
        }
    }
    Ok(())
}

/// `1 live key stops`, `3 live keys stop`, `no live keys stop`.
fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// Invites by email; prints the link too when no mail server will carry it.
fn invite(
    ctx: &mut Context,
    email: &str,
    role: &str,
    name: &str,
    now: chrono::DateTime<Utc>,
) -> Result<(), CliError> {
    let issuer = ctx.issuer();
    let master = crate::app::master_key(&ctx.config)?;
    let settings = crate::app::account_settings(&ctx.config, &issuer, &master);
    let invitation = Invitation {
        email,
        role,
        name,
        actor: COMMAND_LINE,
        again: false,
    };
    let link = accounts::invite_with(ctx.conn(), &settings, &issuer, invitation, now)
        .map_err(AppError::from)?;
    println!(
        "added user {} with role {}; an invitation email is queued",
        link.user.email, link.user.role
    );
    if settings.mail_to_files {
        println!(
            "emails go to files (no KEYGATE_SMTP_URL), so here is the link: open it to set \
             the password (it works once, until {}):",
            rfc3339(link.expires_at)
        );
        println!("{}", link.url.expose());
    }
    Ok(())
}

/// The password from stdin, checked against the policy and hashed at once;
/// the clear password is not kept.
fn read_password(email: &str) -> Result<String, CliError> {
    let mut input = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_to_string(&mut input)?;
    let password = input.trim_end_matches(['\r', '\n']);
    accounts::check_password_policy(password, email)
        .map_err(|problem| CliError::Usage(problem.to_string()))?;
    Password::new(password)
        .hash()
        .map_err(|e| CliError::Usage(format!("cannot hash the password: {e}")))
}
