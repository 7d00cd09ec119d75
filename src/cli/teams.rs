//! `keygate teams`: add, list, disable and enable teams, and add and remove
//! their members. A team's keys keep working whoever leaves; disabling the
//! team stops them at once.

use chrono::Utc;
use clap::Subcommand;

use super::{CliError, Context, print_json};
use crate::audit::COMMAND_LINE;
use crate::http::error::AppError;
use crate::teams::{self, NewTeam, TeamChange, TeamError, TeamWithMembers};

/// A refusal of the teams feature, said in one line.
impl From<TeamError> for CliError {
    fn from(error: TeamError) -> Self {
        Self::App(AppError::from(error))
    }
}

#[derive(Debug, Subcommand)]
pub enum TeamsCommand {
    /// Add a team: a name, members and a role bounding its keys' scopes.
    Add {
        /// The team's name: a lower-case letter or digit, then up to 62
        /// lower-case letters, digits and hyphens.
        name: String,
        /// The role bounding the scopes of the team's keys.
        #[arg(long)]
        role: Option<String>,
        /// Where emails about the team's keys go (default: every enabled member).
        #[arg(long, value_name = "EMAIL")]
        notify: Option<String>,
        /// What the team is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List teams with their members.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Add or remove a team's members.
    #[command(subcommand)]
    Members(MembersCommand),
    /// Disable a team: its keys stop working at once.
    Disable {
        /// The team's name.
        name: String,
    },
    /// Enable a disabled team: its live keys work again.
    Enable {
        /// The team's name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// Add a person to a team (a disabled person is refused).
    Add {
        /// The team's name.
        name: String,
        /// The person's email.
        email: String,
    },
    /// Remove a person from a team; the team's keys keep working.
    Remove {
        /// The team's name.
        name: String,
        /// The person's email.
        email: String,
    },
}

pub fn run(command: TeamsCommand, ctx: &mut Context) -> Result<(), CliError> {
    let now = Utc::now();
    match command {
        TeamsCommand::Add {
            name,
            role,
            notify,
            description,
        } => {
            let new = NewTeam {
                name: &name,
                role: role.as_deref(),
                notify: notify.as_deref(),
                description: &description,
            };
            let team = teams::create_team(ctx.conn(), new, COMMAND_LINE, now)?;
            println!(
                "added team {} with role {}; emails about its keys go to {}",
                team.team.name,
                team.team.role,
                recipients(&team)
            );
        }
        TeamsCommand::List { json } => {
            let list = teams::list_teams(ctx.conn())?;
            if json {
                print_json(&list)?;
            } else {
                for team in &list {
                    println!("{}", team_line(team));
                }
            }
        }
        TeamsCommand::Members(MembersCommand::Add { name, email }) => {
            let team = teams::add_member(ctx.conn(), &name, &email, COMMAND_LINE, now)?;
            println!(
                "{} is a member of team {}; members: {}",
                email.trim().to_lowercase(),
                team.team.name,
                members(&team)
            );
        }
        TeamsCommand::Members(MembersCommand::Remove { name, email }) => {
            let team = teams::remove_member(ctx.conn(), &name, &email, COMMAND_LINE, now)?;
            println!(
                "removed {} from team {}; the team's keys keep working; members: {}",
                email.trim().to_lowercase(),
                team.team.name,
                members(&team)
            );
        }
        TeamsCommand::Disable { name } => {
            let team = set_disabled(ctx, &name, true)?;
            println!("disabled team {}; its keys no longer work", team.team.name);
        }
        TeamsCommand::Enable { name } => {
            let team = set_disabled(ctx, &name, false)?;
            println!("enabled team {}; its live keys work again", team.team.name);
        }
    }
    Ok(())
}

fn set_disabled(
    ctx: &mut Context,
    name: &str,
    disabled: bool,
) -> Result<TeamWithMembers, CliError> {
    let change = TeamChange {
        disabled: Some(disabled),
        ..TeamChange::default()
    };
    Ok(teams::update_team(
        ctx.conn(),
        name,
        &change,
        COMMAND_LINE,
        Utc::now(),
    )?)
}

/// Where the emails about the team's keys go, in words.
fn recipients(team: &TeamWithMembers) -> String {
    match &team.team.notify_email {
        Some(address) => address.clone(),
        None => "every enabled member".to_owned(),
    }
}

/// `payments  role member  enabled  notify every enabled member  members a@x, b@x  description`
fn team_line(team: &TeamWithMembers) -> String {
    let state = if team.team.disabled {
        "disabled"
    } else {
        "enabled"
    };
    format!(
        "{}\trole {}\t{state}\tnotify {}\tmembers {}\t{}",
        team.team.name,
        team.team.role,
        recipients(team),
        members(team),
        team.team.description
    )
}

/// The members' emails, comma-separated; `-` for none.
fn members(team: &TeamWithMembers) -> String {
    if team.members.is_empty() {
        "-".to_owned()
    } else {
        team.members.join(", ")
    }
}
