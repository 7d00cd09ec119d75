//! Users and roles. A role is a named set of scopes its members may give
//! their keys; `admin` may grant every scope, `member` every registered API
//! scope and none of keygate's own.

mod error;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::db::schema::{roles, sessions, users};
use crate::db::{DbConnection, is_unique_violation, write_transaction};
use crate::events::{self, EventType};
use crate::resource_servers;
use crate::scope::{self, ScopeSet};
pub use error::UserError;

pub const ADMIN_ROLE: &str = "admin";
pub const MEMBER_ROLE: &str = "member";

#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = roles)]
pub struct Role {
    pub name: String,
    pub scopes: String,
    pub grants_all: bool,
    pub grants_api_scopes: bool,
    pub builtin: bool,
    #[serde(with = "crate::time::naive_utc")]
    pub created_at: NaiveDateTime,
    #[serde(with = "crate::time::naive_utc")]
    pub updated_at: NaiveDateTime,
}

/// The scopes a role may grant, resolved against the registered APIs.
#[derive(Debug, Clone)]
pub enum Grantable {
    Everything,
    Only(ScopeSet),
}

impl Grantable {
    pub fn allows(&self, scope: &str) -> bool {
        match self {
            Self::Everything => true,
            Self::Only(set) => set.contains(scope),
        }
    }
}

impl Role {
    /// `api_scopes` is consulted only for roles that grant every API scope.
    pub fn grantable(
        &self,
        api_scopes: impl FnOnce() -> QueryResult<ScopeSet>,
    ) -> QueryResult<Grantable> {
        if self.grants_all {
            return Ok(Grantable::Everything);
        }
        let own = ScopeSet::from_stored(&self.scopes);
        if !self.grants_api_scopes {
            return Ok(Grantable::Only(own));
        }
        let mut all = api_scopes()?.to_vec();
        all.extend(own.to_vec());
        Ok(Grantable::Only(all.into_iter().collect()))
    }

    pub fn scope_list(&self) -> Vec<String> {
        ScopeSet::from_stored(&self.scopes).to_vec()
    }
}

#[derive(Clone, Queryable, Selectable, Serialize, ToSchema)]
#[diesel(table_name = users)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    /// The name of the user's role.
    pub role: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub password_hash: Option<String>,
    pub disabled: bool,
    pub can_create_keys: bool,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
    #[serde(with = "crate::time::naive_utc")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: NaiveDateTime,
}

/// Everything but the password hash, which is shown only as there or not.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_password", &self.password_hash.is_some())
            .field("disabled", &self.disabled)
            .field("can_create_keys", &self.can_create_keys)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Ends every console session of the person. The sessions table belongs to
/// `accounts`, which depends on this module; disabling lives here, so the
/// deletion that must go with it does too.
fn end_sessions(conn: &mut DbConnection, user_id: &str) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    id: String,
    email: &'a str,
    name: &'a str,
    role: &'a str,
    password_hash: Option<String>,
    disabled: bool,
    can_create_keys: bool,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

/// An email address as keygate stores it: trimmed, lower-cased, and accepted
/// by lettre's address parser (so every stored user can be emailed).
pub fn normalize_email(text: &str) -> Result<String, UserError> {
    let email = text.trim().to_lowercase();
    email
        .parse::<lettre::Address>()
        .map_err(|_| UserError::InvalidEmail {
            text: text.to_owned(),
        })?;
    Ok(email)
}

pub struct NewUserInput<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub password_hash: Option<String>,
}

pub fn create_user(
    conn: &mut DbConnection,
    input: NewUserInput<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    let email = normalize_email(input.email)?;
    crate::text::refuse_control_characters("invalid_name", "user's name", input.name)
        .map_err(UserError::InvalidName)?;
    write_transaction(conn, |conn| {
        find_role(conn, input.role)?;
        let new = NewUser {
            id: uuid::Uuid::now_v7().to_string(),
            email: &email,
            name: input.name.trim(),
            role: input.role,
            password_hash: input.password_hash,
            disabled: false,
            can_create_keys: true,
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        diesel::insert_into(users::table)
            .values(&new)
            .execute(conn)
            .map_err(|e| {
                if is_unique_violation(&e) {
                    UserError::UserExists {
                        email: email.clone(),
                    }
                } else {
                    e.into()
                }
            })?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::UserCreated,
                target: &email,
                source_addr: None,
                details: serde_json::json!({ "role": input.role }),
            },
        )?;
        let user = find_user_by_email(conn, &email)?;
        announce(conn, EventType::UserCreated, &user, actor, now)?;
        Ok(user)
    })
}

pub fn find_user_by_email(conn: &mut DbConnection, email: &str) -> Result<User, UserError> {
    let email = email.trim().to_lowercase();
    users::table
        .filter(users::email.eq(&email))
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or(UserError::NoUserWithEmail { email })
}

pub fn find_user(conn: &mut DbConnection, id: &str) -> Result<User, UserError> {
    users::table
        .find(id)
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| UserError::NoUserWithId { id: id.to_owned() })
}

/// The enabled admins' emails: who hears of what concerns keygate itself.
pub fn enabled_admin_emails(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
    users::table
        .filter(users::role.eq(ADMIN_ROLE))
        .filter(users::disabled.eq(false))
        .select(users::email)
        .order(users::email.asc())
        .load(conn)
}

pub fn list_users(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    users::table
        .order(users::email.asc())
        .select(User::as_select())
        .load(conn)
}

/// Disabling takes effect at once: the token endpoint reads the owner's state
/// on every request, and every console session of theirs is deleted.
pub fn set_user_disabled(
    conn: &mut DbConnection,
    email: &str,
    disabled: bool,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    write_transaction(conn, |conn| {
        let user = find_user_by_email(conn, email)?;
        diesel::update(users::table.find(&user.id))
            .set((
                users::disabled.eq(disabled),
                users::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        keep_an_enabled_admin(conn, &user)?;
        if disabled {
            end_sessions(conn, &user.id)?;
        }
        let action = if disabled {
            Action::UserDisabled
        } else {
            Action::UserEnabled
        };
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action,
                target: &user.email,
                source_addr: None,
                details: serde_json::json!({ "disabled": disabled }),
            },
        )?;
        let after = find_user(conn, &user.id)?;
        if disabled != user.disabled {
            let kind = if disabled {
                EventType::UserDisabled
            } else {
                EventType::UserEnabled
            };
            announce(conn, kind, &after, actor, now)?;
        }
        Ok(after)
    })
}

/// Refuses a change that left no enabled admin when `before` (the user as
/// it was) was one: nobody could manage keygate over the API any more.
/// Called after the update, inside its transaction, so the refusal undoes it.
fn keep_an_enabled_admin(conn: &mut DbConnection, before: &User) -> Result<(), UserError> {
    if before.disabled || before.role != ADMIN_ROLE {
        return Ok(());
    }
    let admins: i64 = users::table
        .filter(users::role.eq(ADMIN_ROLE))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?;
    if admins > 0 {
        return Ok(());
    }
    Err(UserError::LastAdmin {
        email: before.email.clone(),
    })
}

pub fn find_role(conn: &mut DbConnection, name: &str) -> Result<Role, UserError> {
    roles::table
        .find(name)
        .select(Role::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| UserError::RoleNotFound {
            name: name.to_owned(),
        })
}

pub fn list_roles(conn: &mut DbConnection) -> QueryResult<Vec<Role>> {
    roles::table
        .order(roles::name.asc())
        .select(Role::as_select())
        .load(conn)
}

/// Creates or replaces a custom role. Every scope must be built in or
/// registered by an API; the built-in roles cannot be changed.
pub fn set_role(
    conn: &mut DbConnection,
    name: &str,
    scopes: &ScopeSet,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Role, UserError> {
    let valid_name = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid_name {
        return Err(UserError::InvalidRoleName {
            name: name.to_owned(),
        });
    }
    write_transaction(conn, |conn| {
        let registered = resource_servers::all_api_scopes(conn)?;
        if let Some(unknown) = scopes
            .iter()
            .find(|s| !scope::is_builtin(s) && !registered.contains(s))
        {
            return Err(UserError::UnknownScope {
                scope: unknown.to_owned(),
            });
        }
        let existing = roles::table
            .find(name)
            .select(Role::as_select())
            .first(conn)
            .optional()?;
        match existing {
            Some(role) if role.builtin => {
                return Err(UserError::BuiltinRole {
                    name: name.to_owned(),
                });
            }
            Some(_) => {
                diesel::update(roles::table.find(name))
                    .set((
                        roles::scopes.eq(scopes.to_string()),
                        roles::updated_at.eq(now.naive_utc()),
                    ))
                    .execute(conn)?;
            }
            None => {
                diesel::insert_into(roles::table)
                    .values((
                        roles::name.eq(name),
                        roles::scopes.eq(scopes.to_string()),
                        roles::grants_all.eq(false),
                        roles::grants_api_scopes.eq(false),
                        roles::builtin.eq(false),
                        roles::created_at.eq(now.naive_utc()),
                        roles::updated_at.eq(now.naive_utc()),
                    ))
                    .execute(conn)?;
            }
        }
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::RoleSet,
                target: name,
                source_addr: None,
                details: serde_json::json!({ "scopes": scopes.to_vec() }),
            },
        )?;
        find_role(conn, name)
    })
}

/// What an admin may change about a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges<'a> {
    pub disabled: Option<bool>,
    pub can_create_keys: Option<bool>,
    pub role: Option<&'a str>,
}

/// Applies the changes and records one audit event naming them: disabling
/// is `user.disabled`, anything else `user.updated`. Like
/// [`set_user_disabled`], it bites at once at the token endpoint.
pub fn update_user(
    conn: &mut DbConnection,
    email: &str,
    changes: &UserChanges<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    write_transaction(conn, |conn| {
        let user = find_user_by_email(conn, email)?;
        if let Some(role) = changes.role {
            find_role(conn, role)?;
        }
        let disabled = changes.disabled.unwrap_or(user.disabled);
        let can_create_keys = changes.can_create_keys.unwrap_or(user.can_create_keys);
        let role = changes.role.unwrap_or(&user.role);
        diesel::update(users::table.find(&user.id))
            .set((
                users::disabled.eq(disabled),
                users::can_create_keys.eq(can_create_keys),
                users::role.eq(role),
                users::updated_at.eq(now.naive_utc()),
            ))
            .execute(conn)?;
        keep_an_enabled_admin(conn, &user)?;
        if disabled {
            end_sessions(conn, &user.id)?;
        }
        let (action, event) = match (user.disabled, disabled) {
            (false, true) => (Action::UserDisabled, Some(EventType::UserDisabled)),
            (true, false) => (Action::UserEnabled, Some(EventType::UserEnabled)),
            _ => (Action::UserUpdated, None),
        };
        let mut details = serde_json::Map::new();
        if let Some(d) = changes.disabled {
            details.insert("disabled".into(), d.into());
        }
        if let Some(c) = changes.can_create_keys {
            details.insert("can_create_keys".into(), c.into());
        }
        if let Some(r) = changes.role {
            details.insert("role".into(), r.into());
        }
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action,
                target: &user.email,
                source_addr: None,
                details: details.into(),
            },
        )?;
        let after = find_user(conn, &user.id)?;
        if let Some(event) = event {
            announce(conn, event, &after, actor, now)?;
        }
        Ok(after)
    })
}

/// Tells the systems around keygate (`crate::webhooks`) of a person's
/// `event`, in the caller's transaction: the person as the API shows them,
/// and who acted.
fn announce(
    conn: &mut DbConnection,
    event: EventType,
    user: &User,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    let mut data = serde_json::to_value(user).unwrap_or_else(|_| serde_json::json!({}));
    data["actor"] = actor.into();
    let event = events::Event {
        kind: event,
        object: &user.id,
        data,
    };
    events::emit(conn, event, now)?;
    Ok(())
}
