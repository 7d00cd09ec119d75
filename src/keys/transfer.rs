//! Giving a key to another person or team (INTERFACE.md "Teams, transfers
//! and approvals"): the client ID and the secret stay, so nothing using the
//! key breaks; and disabling a person with their live keys handed over in
//! the same transaction.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use super::caller::Caller;
use super::error::KeyError;
use super::model::{ApiKey, Key, KeyStatus};
use super::notify::notify_view;
use super::owner::{self, KeyOwner, Ownership};
use super::rules;
use super::service::{KeyFilter, Lock, Service, load_keys, record, visible_row};
use crate::audit::Action;
use crate::db::schema::api_keys;
use crate::db::{DbConnection, write_transaction};
use crate::mail::Event;
use crate::resource_servers;
use crate::users::{self, User};

/// What the "transferred" email shows: the key, whom it came from and
/// whom it went to.
#[derive(Serialize)]
struct TransferView<'a> {
    #[serde(flatten)]
    key: &'a Key,
    transferred_from: String,
    transferred_to: String,
    transfer_reason: Option<&'a str>,
}

/// A person disabled, and what became of their live keys.
#[derive(Debug)]
pub struct Disabled {
    pub user: User,
    /// Their live keys given to the new owner, as they are now.
    pub transferred: Vec<Key>,
    /// Their live keys that stopped with them (none when transferred).
    pub stopped: Vec<Key>,
}

impl Service {
    /// Gives the key to `to`. Refused, with nothing changed, for a revoked
    /// or expired key, a disabled or unknown new owner, the owner it has,
    /// or a key holding scopes the new owner's role may not grant (the
    /// refusal names them). Audited; both owners are emailed.
    pub fn transfer(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        to: &KeyOwner,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        let reason = rules::check_reason(reason)?;
        write_transaction(conn, |conn| {
            self.transfer_in(conn, caller, client_id, to, reason, now)
        })
    }

    /// [`Service::transfer`] inside the caller's transaction.
    fn transfer_in(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        client_id: &str,
        to: &KeyOwner,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Key, KeyError> {
        let (row, from) = visible_row(conn, caller, client_id, Lock::ForUpdate)?;
        rules::refuse_unless_active(&row, now)?;
        let holder = owner::find_holder(conn, to)?;
        if holder.owner == from {
            return Err(KeyError::SameOwner {
                client_id: client_id.to_owned(),
                owner: from.to_string(),
            });
        }
        match &holder.owner {
            KeyOwner::Person(email) if holder.disabled => {
                return Err(KeyError::OwnerDisabled(email.clone()));
            }
            KeyOwner::Team(name) if holder.disabled => {
                return Err(KeyError::TeamDisabled(name.clone()));
            }
            _ => {}
        }
        let grantable = holder
            .role
            .grantable(|| resource_servers::all_api_scopes(conn))?;
        let refused: Vec<String> = row
            .scopes
            .iter()
            .filter(|s| !grantable.allows(s))
            .map(str::to_owned)
            .collect();
        if !refused.is_empty() {
            return Err(KeyError::TransferNotGrantable {
                client_id: client_id.to_owned(),
                to: holder.owner.to_string(),
                role: holder.role.name.clone(),
                scopes: refused,
            });
        }
        let (owner_id, team_id) = holder.columns();
        let row: ApiKey = diesel::update(api_keys::table.find(&row.id))
            .set((
                api_keys::owner_id.eq(owner_id),
                api_keys::team_id.eq(team_id),
                api_keys::updated_at.eq(now.naive_utc()),
            ))
            .returning(ApiKey::columns())
            .get_result(conn)?;
        record(
            conn,
            (caller, Action::KeyTransferred, client_id),
            None,
            json!({
                "from": { "owner": from.email(), "team": from.team_name() },
                "to": { "owner": holder.owner.email(), "team": holder.owner.team_name() },
                "reason": reason,
            }),
            now,
        )?;
        let key = Key::new(row, holder.owner.clone(), now);
        // The previous owner's side first; someone on both sides (a member
        // of both teams) gets one email.
        let mut recipients = owner::recipients_as(conn, &from, Ownership::Owned)?;
        for recipient in owner::recipients(conn, &holder.owner)? {
            if !recipients.iter().any(|r| r.address == recipient.address) {
                recipients.push(recipient);
            }
        }
        let view = TransferView {
            key: &key,
            transferred_from: from.to_string(),
            transferred_to: holder.owner.to_string(),
            transfer_reason: reason,
        };
        notify_view(
            conn,
            Event::Transferred,
            (&key, &view),
            &recipients,
            (&self.issuer, caller),
            now,
        )?;
        Ok(key)
    }

    /// The live keys (active or pending) of the person with this email:
    /// what would stop if they were disabled.
    pub fn live_keys_of(
        &self,
        conn: &mut DbConnection,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Key>, KeyError> {
        let filter = KeyFilter {
            owner: Some(KeyOwner::person(email)),
            status: None,
        };
        Ok(load_keys(conn, None, &filter, now)?
            .into_iter()
            .filter(|k| matches!(k.status, KeyStatus::Active | KeyStatus::Pending))
            .collect())
    }

    /// Disables a person (their sessions end, their keys stop) and, with
    /// `transfer_to`, first gives every live key of theirs to that person
    /// or team: all in one transaction, so if one transfer is refused
    /// nothing happens and the refusal names the key. Admins only.
    pub fn disable_person(
        &self,
        conn: &mut DbConnection,
        caller: &Caller,
        email: &str,
        transfer_to: Option<&KeyOwner>,
        now: DateTime<Utc>,
    ) -> Result<Disabled, KeyError> {
        if !caller.is_admin() {
            return Err(KeyError::AdminOnly);
        }
        write_transaction(conn, |conn| {
            let user = users::find_user_by_email(conn, email)?;
            let live = self.live_keys_of(conn, &user.email, now)?;
            let mut transferred = Vec::new();
            if let Some(to) = transfer_to {
                for key in &live {
                    let moved = self
                        .transfer_in(
                            conn,
                            caller,
                            key.client_id.as_str(),
                            to,
                            Some("owner disabled"),
                            now,
                        )
                        .map_err(|source| KeyError::InTransfer {
                            client_id: key.client_id.to_string(),
                            name: key.name.clone(),
                            source: Box::new(source),
                        })?;
                    transferred.push(moved);
                }
            }
            let user = users::set_user_disabled(conn, &user.email, true, caller.actor(), now)?;
            let stopped = if transfer_to.is_some() {
                Vec::new()
            } else {
                live
            };
            Ok(Disabled {
                user,
                transferred,
                stopped,
            })
        })
    }
}
