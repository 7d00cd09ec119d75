//! Teams (INTERFACE.md "Teams, transfers and approvals"): a name, members
//! and a role bounding the scopes of the team's keys. A team's key keeps
//! working whoever leaves; disabling the team stops its keys at once (the
//! token endpoint reads the team's state with the key, and the change
//! epochs move with every change here). Admins manage teams; the keys
//! service (`crate::keys`) decides what members may do with its keys.

mod error;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::db::schema::{roles, team_members, teams, users};
use crate::db::{DbConnection, is_unique_violation, write_transaction};
pub use error::TeamError;

/// The longest description a team may have.
pub const MAX_DESCRIPTION_LEN: usize = 1000;

#[derive(Debug, Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = teams)]
pub struct Team {
    #[serde(skip)]
    #[schema(ignore)]
    pub id: String,
    pub name: String,
    /// The role that bounds the scopes of the team's keys.
    pub role: String,
    /// Where emails about the team's keys go; `null`: every enabled member.
    #[schema(required = true)]
    #[serde(rename = "notify")]
    pub notify_email: Option<String>,
    pub description: String,
    /// A disabled team's keys stop working until it is enabled again.
    pub disabled: bool,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: NaiveDateTime,
}

/// A team with its members' emails, as lists and reads show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TeamWithMembers {
    #[serde(flatten)]
    pub team: Team,
    /// The members' emails, in order.
    pub members: Vec<String>,
}

/// What a new team is made of.
#[derive(Debug, Clone, Default)]
pub struct NewTeam<'a> {
    pub name: &'a str,
    /// `None`: `member`.
    pub role: Option<&'a str>,
    pub notify: Option<&'a str>,
    pub description: &'a str,
}

/// What a change to a team changes; `None`: left as it is.
#[derive(Debug, Clone, Default)]
pub struct TeamChange {
    pub role: Option<String>,
    /// `Some(None)` removes the notify address.
    pub notify: Option<Option<String>>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
}

impl TeamChange {
    pub fn is_empty(&self) -> bool {
        self.role.is_none()
            && self.notify.is_none()
            && self.description.is_none()
            && self.disabled.is_none()
    }
}

#[derive(Insertable)]
#[diesel(table_name = teams)]
struct NewTeamRow<'a> {
    id: String,
    name: &'a str,
    role: &'a str,
    notify_email: Option<String>,
    description: &'a str,
    disabled: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// A team name: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn check_name(name: &str) -> Result<(), TeamError> {
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(TeamError::InvalidName {
            name: name.to_owned(),
        })
    }
}

fn check_description(description: &str) -> Result<(), TeamError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(TeamError::DescriptionLength {
            max: MAX_DESCRIPTION_LEN,
        });
    }
    crate::text::refuse_control_characters("invalid_description", "description", description)
        .map_err(TeamError::InvalidDescription)
}

fn check_notify(notify: &str) -> Result<String, TeamError> {
    crate::users::normalize_email(notify).map_err(|_| TeamError::InvalidNotify {
        text: notify.to_owned(),
    })
}

fn check_role(conn: &mut DbConnection, role: &str) -> Result<(), TeamError> {
    let found: Option<String> = roles::table
        .find(role)
        .select(roles::name)
        .first(conn)
        .optional()?;
    found.map(|_| ()).ok_or_else(|| TeamError::RoleNotFound {
        name: role.to_owned(),
    })
}

fn record(
    conn: &mut DbConnection,
    (actor, action, target): (&str, Action, &str),
    details: serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    audit::record(
        conn,
        now,
        audit::Entry {
            actor,
            action,
            target,
            source_addr: None,
            details,
        },
    )
}

/// The audit log's target for a team.
fn target(name: &str) -> String {
    format!("team:{name}")
}

pub fn create_team(
    conn: &mut DbConnection,
    new: NewTeam<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TeamWithMembers, TeamError> {
    let name = new.name.trim();
    check_name(name)?;
    check_description(new.description)?;
    let notify = new.notify.map(check_notify).transpose()?;
    let role = new.role.unwrap_or(crate::users::MEMBER_ROLE);
    write_transaction(conn, |conn| {
        check_role(conn, role)?;
        let row = NewTeamRow {
            id: uuid::Uuid::now_v7().to_string(),
            name,
            role,
            notify_email: notify.clone(),
            description: new.description.trim(),
            disabled: false,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        diesel::insert_into(teams::table)
            .values(&row)
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    TeamError::TeamExists {
                        name: name.to_owned(),
                    }
                } else {
                    e.into()
                }
            })?;
        record(
            conn,
            (actor, Action::TeamCreated, &target(name)),
            serde_json::json!({ "role": role, "notify": notify }),
            now,
        )?;
        find_team(conn, name)
    })
}

/// The team with this name, with its members.
pub fn find_team(conn: &mut DbConnection, name: &str) -> Result<TeamWithMembers, TeamError> {
    let team: Team = teams::table
        .filter(teams::name.eq(name.trim()))
        .select(Team::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| TeamError::TeamNotFound {
            name: name.trim().to_owned(),
        })?;
    let members = members_of(conn, &team.id)?;
    Ok(TeamWithMembers { team, members })
}

/// Every team by name, with its members.
pub fn list_teams(conn: &mut DbConnection) -> QueryResult<Vec<TeamWithMembers>> {
    let all: Vec<Team> = teams::table
        .order(teams::name.asc())
        .select(Team::as_select())
        .load(conn)?;
    let pairs: Vec<(String, String)> = team_members::table
        .inner_join(users::table)
        .select((team_members::team_id, users::email))
        .order(users::email.asc())
        .load(conn)?;
    Ok(all
        .into_iter()
        .map(|team| {
            let members = pairs
                .iter()
                .filter(|(id, _)| *id == team.id)
                .map(|(_, email)| email.clone())
                .collect();
            TeamWithMembers { team, members }
        })
        .collect())
}

/// The teams the person with this email belongs to, by name.
pub fn teams_of(conn: &mut DbConnection, email: &str) -> QueryResult<Vec<Team>> {
    teams::table
        .inner_join(team_members::table.inner_join(users::table))
        .filter(users::email.eq(email.trim().to_lowercase()))
        .order(teams::name.asc())
        .select(Team::as_select())
        .load(conn)
}

fn members_of(conn: &mut DbConnection, team_id: &str) -> QueryResult<Vec<String>> {
    team_members::table
        .inner_join(users::table)
        .filter(team_members::team_id.eq(team_id))
        .select(users::email)
        .order(users::email.asc())
        .load(conn)
}

/// Changes a team's role, notify address, description or state. Disabling
/// stops its keys at the next request on every process; enabling brings
/// them back.
pub fn update_team(
    conn: &mut DbConnection,
    name: &str,
    change: &TeamChange,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TeamWithMembers, TeamError> {
    if change.is_empty() {
        return Err(TeamError::NothingToChange);
    }
    if let Some(description) = &change.description {
        check_description(description)?;
    }
    let notify = match &change.notify {
        Some(Some(address)) => Some(Some(check_notify(address)?)),
        Some(None) => Some(None),
        None => None,
    };
    write_transaction(conn, |conn| {
        let before = find_team(conn, name)?.team;
        if let Some(role) = &change.role {
            check_role(conn, role)?;
        }
        let role = change.role.clone().unwrap_or(before.role.clone());
        let notify_email = notify.clone().unwrap_or(before.notify_email.clone());
        let description = change
            .description
            .as_deref()
            .map(str::trim)
            .unwrap_or(&before.description)
            .to_owned();
        let disabled = change.disabled.unwrap_or(before.disabled);
        diesel::update(teams::table.find(&before.id))
            .set((
                teams::role.eq(&role),
                teams::notify_email.eq(&notify_email),
                teams::description.eq(&description),
                teams::disabled.eq(disabled),
                teams::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        record(
            conn,
            (actor, Action::TeamUpdated, &target(&before.name)),
            serde_json::json!({
                "role": { "from": before.role, "to": role },
                "notify": { "from": before.notify_email, "to": notify_email },
                "disabled": { "from": before.disabled, "to": disabled },
            }),
            now,
        )?;
        find_team(conn, &before.name)
    })
}

/// Adds the person to the team; adding a member again changes nothing.
/// A disabled person is refused.
pub fn add_member(
    conn: &mut DbConnection,
    name: &str,
    email: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TeamWithMembers, TeamError> {
    let email = email.trim().to_lowercase();
    write_transaction(conn, |conn| {
        let team = find_team(conn, name)?;
        let (user_id, disabled) = person(conn, &email)?;
        if disabled {
            return Err(TeamError::MemberDisabled { email });
        }
        if team.members.contains(&email) {
            return Ok(team);
        }
        diesel::insert_into(team_members::table)
            .values((
                team_members::team_id.eq(&team.team.id),
                team_members::user_id.eq(&user_id),
                team_members::added_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        record(
            conn,
            (actor, Action::TeamMemberAdded, &target(&team.team.name)),
            serde_json::json!({ "member": email }),
            now,
        )?;
        find_team(conn, &team.team.name)
    })
}

/// Removes the person from the team. The team's keys keep working.
pub fn remove_member(
    conn: &mut DbConnection,
    name: &str,
    email: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<TeamWithMembers, TeamError> {
    let email = email.trim().to_lowercase();
    write_transaction(conn, |conn| {
        let team = find_team(conn, name)?;
        let (user_id, _) = person(conn, &email)?;
        let removed = diesel::delete(
            team_members::table
                .filter(team_members::team_id.eq(&team.team.id))
                .filter(team_members::user_id.eq(&user_id)),
        )
        .execute(conn)?;
        if removed == 0 {
            return Err(TeamError::NotAMember {
                email,
                team: team.team.name,
            });
        }
        record(
            conn,
            (actor, Action::TeamMemberRemoved, &target(&team.team.name)),
            serde_json::json!({ "member": email }),
            now,
        )?;
        find_team(conn, &team.team.name)
    })
}

/// The person's row ID and whether they are disabled.
fn person(conn: &mut DbConnection, email: &str) -> Result<(String, bool), TeamError> {
    users::table
        .filter(users::email.eq(email))
        .select((users::id, users::disabled))
        .first(conn)
        .optional()?
        .ok_or_else(|| TeamError::NoUserWithEmail {
            email: email.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_name_is_lower_case_letters_digits_and_hyphens() {
        for good in ["a", "0", "payments", "data-eng-2", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "Payments", "a_b", "a b", "ä", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
