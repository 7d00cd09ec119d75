//! Who a key belongs to: one person or one team (INTERFACE.md "Teams,
//! transfers and approvals"), as shown ([`KeyOwner`]), as resolved in the
//! database ([`Holder`]: what giving them a key depends on), and where the
//! key's emails go ([`recipients`]).

use diesel::prelude::*;

use super::error::KeyError;
use crate::db::DbConnection;
use crate::db::schema::{roles, team_members, teams, users};
use crate::users::Role;

/// A key's owner: a person (by email) or a team (by name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    Person(String),
    Team(String),
}

impl KeyOwner {
    /// A person's email as keygate stores it, or a team's name.
    pub fn person(email: &str) -> Self {
        Self::Person(email.trim().to_lowercase())
    }

    pub fn team(name: &str) -> Self {
        Self::Team(name.trim().to_owned())
    }

    /// From the key's joined row: the owner's email or the team's name.
    pub(super) fn from_columns(email: Option<String>, team: Option<String>) -> Self {
        match (email, team) {
            (_, Some(team)) => Self::Team(team),
            (Some(email), None) => Self::Person(email),
            // The schema's CHECK forbids a key with neither.
            (None, None) => Self::Person(String::new()),
        }
    }

    /// `(owner, team)`, as a key object shows them.
    pub(super) fn into_columns(self) -> (Option<String>, Option<String>) {
        match self {
            Self::Person(email) => (Some(email), None),
            Self::Team(name) => (None, Some(name)),
        }
    }

    pub fn email(&self) -> Option<&str> {
        match self {
            Self::Person(email) => Some(email),
            Self::Team(_) => None,
        }
    }

    pub fn team_name(&self) -> Option<&str> {
        match self {
            Self::Team(name) => Some(name),
            Self::Person(_) => None,
        }
    }
}

/// `alice@example.com`, or `team payments`: how messages name an owner.
impl std::fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Person(email) => f.write_str(email),
            Self::Team(name) => write!(f, "team {name}"),
        }
    }
}

/// An owner found in the database with what giving them a key depends on.
pub(super) struct Holder {
    /// The person's or the team's row ID.
    pub id: String,
    pub owner: KeyOwner,
    pub disabled: bool,
    /// A person's switch; a team may always be given keys.
    pub can_create_keys: bool,
    /// The role that bounds the owner's keys' scopes.
    pub role: Role,
}

impl Holder {
    /// The row's owner columns: `(owner_id, team_id)`.
    pub fn columns(&self) -> (Option<&str>, Option<&str>) {
        match self.owner {
            KeyOwner::Person(_) => (Some(&self.id), None),
            KeyOwner::Team(_) => (None, Some(&self.id)),
        }
    }
}

/// The person or team `owner` names, with its role, in one read.
pub(super) fn find_holder(conn: &mut DbConnection, owner: &KeyOwner) -> Result<Holder, KeyError> {
    match owner {
        KeyOwner::Person(email) => {
            let email = email.trim().to_lowercase();
            let found: Option<(String, bool, bool, Role)> = users::table
                .inner_join(roles::table)
                .filter(users::email.eq(&email))
                .select((
                    users::id,
                    users::disabled,
                    users::can_create_keys,
                    Role::as_select(),
                ))
                .first(conn)
                .optional()?;
            let (id, disabled, can_create_keys, role) =
                found.ok_or_else(|| KeyError::OwnerNotFound(email.clone()))?;
            Ok(Holder {
                id,
                owner: KeyOwner::Person(email),
                disabled,
                can_create_keys,
                role,
            })
        }
        KeyOwner::Team(name) => {
            let name = name.trim();
            let found: Option<(String, bool, Role)> = teams::table
                .inner_join(roles::table)
                .filter(teams::name.eq(name))
                .select((teams::id, teams::disabled, Role::as_select()))
                .first(conn)
                .optional()?;
            let (id, disabled, role) =
                found.ok_or_else(|| KeyError::TeamNotFound(name.to_owned()))?;
            Ok(Holder {
                id,
                owner: KeyOwner::Team(name.to_owned()),
                disabled,
                can_create_keys: true,
                role,
            })
        }
    }
}

/// Refuses an owner who may not be given a key: a disabled person or team,
/// or a person with key creation switched off.
pub(super) fn check_holder(holder: &Holder) -> Result<(), KeyError> {
    match (&holder.owner, holder.disabled) {
        (KeyOwner::Person(email), true) => Err(KeyError::OwnerDisabled(email.clone())),
        (KeyOwner::Team(name), true) => Err(KeyError::TeamDisabled(name.clone())),
        (KeyOwner::Person(email), false) if !holder.can_create_keys => {
            Err(KeyError::CreationDisabled(email.clone()))
        }
        _ => Ok(()),
    }
}

/// Whether the person with this email belongs to the team with this name.
pub(super) fn is_member(conn: &mut DbConnection, email: &str, team: &str) -> QueryResult<bool> {
    let found: Option<String> = team_members::table
        .inner_join(users::table)
        .inner_join(teams::table)
        .filter(teams::name.eq(team))
        .filter(users::email.eq(email.trim().to_lowercase()))
        .select(users::id)
        .first(conn)
        .optional()?;
    Ok(found.is_some())
}

/// The row IDs of the teams the person with this email belongs to.
pub(super) fn team_ids_of(conn: &mut DbConnection, email: &str) -> QueryResult<Vec<String>> {
    team_members::table
        .inner_join(users::table)
        .filter(users::email.eq(email.trim().to_lowercase()))
        .select(team_members::team_id)
        .load(conn)
}

/// Someone an email about a key goes to, and why (the email's last line
/// says it: "... to ADDRESS, RELATION.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub address: String,
    pub relation: String,
}

impl Recipient {
    pub fn new(address: impl Into<String>, relation: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            relation: relation.into(),
        }
    }
}

/// Where the emails about a key of `owner` go: the person; for a team, its
/// notify address when set, otherwise every enabled member (none: nobody).
pub fn recipients(conn: &mut DbConnection, owner: &KeyOwner) -> QueryResult<Vec<Recipient>> {
    recipients_as(conn, owner, Ownership::Owns)
}

/// Whether the owner a key's email goes to owns it, or owned it until a
/// transfer now: what the email's last line says of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ownership {
    Owns,
    Owned,
}

/// [`recipients`], each told whether the owner owns the key or owned it.
pub(super) fn recipients_as(
    conn: &mut DbConnection,
    owner: &KeyOwner,
    ownership: Ownership,
) -> QueryResult<Vec<Recipient>> {
    let owns = match ownership {
        Ownership::Owns => "owns this API key",
        Ownership::Owned => "owned this API key until now",
    };
    match owner {
        KeyOwner::Person(email) => {
            let relation = match ownership {
                Ownership::Owns => "the owner of this API key",
                Ownership::Owned => "its previous owner",
            };
            Ok(vec![Recipient::new(email, relation)])
        }
        KeyOwner::Team(name) => {
            let notify: Option<Option<String>> = teams::table
                .filter(teams::name.eq(name))
                .select(teams::notify_email)
                .first(conn)
                .optional()?;
            if let Some(Some(address)) = notify {
                let relation = format!("the notify address of team {name}, which {owns}");
                return Ok(vec![Recipient::new(address, relation)]);
            }
            let members: Vec<String> = team_members::table
                .inner_join(users::table)
                .inner_join(teams::table)
                .filter(teams::name.eq(name))
                .filter(users::disabled.eq(false))
                .select(users::email)
                .order(users::email.asc())
                .load(conn)?;
            let relation = format!("a member of team {name}, which {owns}");
            Ok(members
                .into_iter()
                .map(|email| Recipient::new(email, relation.clone()))
                .collect())
        }
    }
}

/// The enabled admins: who hears of a request for approval.
pub(super) fn admins(conn: &mut DbConnection) -> QueryResult<Vec<Recipient>> {
    let emails: Vec<String> = users::table
        .filter(users::role.eq(crate::users::ADMIN_ROLE))
        .filter(users::disabled.eq(false))
        .select(users::email)
        .order(users::email.asc())
        .load(conn)?;
    Ok(emails
        .into_iter()
        .map(|email| Recipient::new(email, "an administrator who may approve this API key"))
        .collect())
}
