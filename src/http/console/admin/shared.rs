//! What the admin pages share: the admin check, reading scopes and yes/no
//! fields, refusals keyed by the form and field they belong beside, and
//! counting live keys.

use actix_web::HttpRequest;

use std::collections::{BTreeMap, HashMap};

use crate::http::console::{Current, PageError, Refused, Viewer, field, viewer};
use crate::http::error::AppError;
use crate::http::form::Form;
use crate::keys::{Key, KeyOwner, KeyStatus};
use crate::scope::ScopeSet;
use crate::state::AppState;

/// The signed-in admin, or the page that says why not.
pub(super) async fn admin(
    req: &HttpRequest,
    state: &AppState,
    current: Current,
) -> Result<Viewer, PageError> {
    let viewer = viewer(req, state, current).await?;
    if viewer.is_admin() {
        Ok(viewer)
    } else {
        let error = AppError::forbidden("admin_only", "Only administrators can open this page.");
        Err(viewer.failed(state, error))
    }
}

/// A form's scopes, space-separated.
pub(super) fn parse_scopes(text: &str) -> Result<ScopeSet, AppError> {
    ScopeSet::parse(text).map_err(|e| AppError::invalid("invalid_scope", e.to_string()))
}

/// A yes/no field; blank: not given.
pub(super) fn flag(form: &Form, name: &str) -> Result<Option<bool>, AppError> {
    match field(form, name)? {
        "" => Ok(None),
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        other => Err(AppError::bad_request(format!(
            "{name} must be true or false, not {other:?}"
        ))),
    }
}

/// How many live keys (active or pending: what disabling their holder
/// stops) each person and team holds.
pub(super) fn live_keys_by_holder(keys: &[Key]) -> HashMap<KeyOwner, usize> {
    let mut counts = HashMap::new();
    for key in keys {
        if matches!(key.status, KeyStatus::Active | KeyStatus::Pending) {
            *counts.entry(key.holder()).or_insert(0) += 1;
        }
    }
    counts
}

/// Refusals by the field they belong beside, prefixed by the form:
/// `settings.notify`, `member.email`; `settings` or `member` alone: above
/// that form.
pub(super) type Errors = BTreeMap<String, String>;

pub(super) fn errors_of(form: &str, refused: Refused) -> Errors {
    let key = match refused.field {
        Some(field) => format!("{form}.{field}"),
        None => form.to_owned(),
    };
    BTreeMap::from([(key, refused.message)])
}
