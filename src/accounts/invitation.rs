//! Invitations: the person created if needed, a one-time link written and
//! its email queued, in one transaction.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::error::AccountError;
use super::links::{self, InviteLink, LinkPurpose, LinkToken, LinkUrl};
use super::settings::{AccountSettings, Registry};
use super::store;
use crate::audit::{self, Action};
use crate::db::{DbConnection, write_transaction};
use crate::mail::{self, AccountContext, AccountEmail};
use crate::time::rfc3339;
use crate::users::{self, NewUserInput};

/// Who is invited, and by whom.
#[derive(Debug, Clone, Copy)]
pub struct Invitation<'a> {
    pub email: &'a str,
    /// The role of a person created by the invitation (an existing person
    /// must already have it).
    pub role: &'a str,
    pub name: &'a str,
    /// Recorded as the actor and named in the email: a person's email, or
    /// [`audit::COMMAND_LINE`].
    pub actor: &'a str,
    /// Whether a person who exists without a password yet is invited again
    /// (the console's "invite"); otherwise any existing person is refused
    /// (`users add`).
    pub again: bool,
}

/// Invites a person (the console's "invite"): see [`invite_with`].
pub async fn invite(
    registry: &impl Registry,
    email: &str,
    role: &str,
    name: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<InviteLink, AccountError> {
    let settings = registry.account_settings().clone();
    let issuer = registry.issuer().to_owned();
    let (email, role, name, actor) = (
        email.to_owned(),
        role.to_owned(),
        name.to_owned(),
        actor.to_owned(),
    );
    registry
        .pool()
        .run(move |conn| {
            let invitation = Invitation {
                email: &email,
                role: &role,
                name: &name,
                actor: &actor,
                again: true,
            };
            invite_with(conn, &settings, &issuer, invitation, now)
        })
        .await
}

/// Creates the person if they do not exist, writes a one-time invitation
/// link and queues its email, all in one transaction. With
/// [`Invitation::again`], a person who exists without a password yet, in
/// the role given, is invited again (their older invitation stops working);
/// anyone else who exists is refused (`user_exists`), as is a disabled
/// person (`user_disabled`).
pub fn invite_with(
    conn: &mut DbConnection,
    settings: &AccountSettings,
    issuer: &str,
    invitation: Invitation<'_>,
    now: DateTime<Utc>,
) -> Result<InviteLink, AccountError> {
    let email = users::normalize_email(invitation.email)?;
    let token = LinkToken::generate();
    let hash = settings
        .token_hasher
        .hash(links::HASH_PURPOSE, token.expose());
    let expires_at = now + settings.invite_ttl.as_chrono();
    let actor = invitation.actor;
    write_transaction(conn, |conn| {
        let (user, created_user) = match store::find_person(conn, &email)? {
            None => {
                let input = NewUserInput {
                    email: &email,
                    name: invitation.name,
                    role: invitation.role,
                    password_hash: None,
                };
                (users::create_user(conn, input, actor, now)?, true)
            }
            Some(user)
                if !invitation.again
                    || user.password_hash.is_some()
                    || user.role != invitation.role =>
            {
                let hint = if user.password_hash.is_some() {
                    " and has a password (they can ask for a reset with \"forgot password\")"
                } else if invitation.again {
                    " with another role (change it with `keygate users set`)"
                } else {
                    ""
                };
                return Err(AccountError::UserExists { email, hint });
            }
            Some(user) if user.disabled => {
                return Err(AccountError::UserDisabled { email });
            }
            Some(user) => (user, false),
        };
        let id = store::insert_link(conn, LinkPurpose::Invite, &hash, &user.id, expires_at, now)?;
        let url = LinkUrl::new(issuer, &token);
        let inviter = match actor {
            audit::COMMAND_LINE => "An administrator".to_owned(),
            audit::SYSTEM => mail::render::PRODUCT.to_owned(),
            person => person.to_owned(),
        };
        mail::enqueue_account_email(
            conn,
            AccountEmail::Invitation,
            &id,
            &AccountContext {
                product: mail::render::PRODUCT,
                issuer,
                recipient: &user.email,
                link: url.expose(),
                expires_at: &rfc3339(expires_at),
                inviter: &inviter,
                occurred_at: &rfc3339(now),
                passkey_only: !settings.password_sign_in,
            },
            now,
        )?;
        audit::record(
            conn,
            now,
            audit::Entry {
                actor,
                action: Action::AccountInvited,
                target: &user.email,
                source_addr: None,
                details: json!({ "link": id, "expires_at": rfc3339(expires_at) }),
            },
        )?;
        Ok(InviteLink {
            url,
            expires_at,
            user,
            created_user,
        })
    })
}
