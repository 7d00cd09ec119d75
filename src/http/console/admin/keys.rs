//! `/admin/keys`: every key, filtered by owner and status.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::shared::admin;
use crate::http::console::keys::{KeyRow, row};
use crate::http::console::{Current, PageError, page, run};
use crate::http::error::AppError;
use crate::keys::{self, KeyStatus};
use crate::state::AppState;

/// The status filter's values; blank: every key.
const KEY_STATUS_FILTERS: [&str; 6] = ["", "pending", "active", "expiring", "expired", "revoked"];

#[derive(Debug, Default, Deserialize, Serialize)]
pub(super) struct KeyFilters {
    #[serde(default)]
    owner: String,
    #[serde(default)]
    status: String,
}

pub(super) async fn all_keys(
    req: HttpRequest,
    state: web::Data<AppState>,
    current: Current,
    query: web::Query<KeyFilters>,
) -> Result<HttpResponse, PageError> {
    let viewer = admin(&req, &state, current).await?;
    let filters = query.into_inner();
    if !KEY_STATUS_FILTERS.contains(&filters.status.as_str()) {
        let refused = AppError::bad_request(format!(
            "{:?} is not a status: choose pending, active, expiring, expired or revoked",
            filters.status
        ));
        return Err(viewer.failed(&state, refused));
    }
    let now = state.clock.now();
    let keys = run(&state, &viewer, move |conn| {
        keys::list_api_keys(conn, None, now)
    })
    .await?;
    let owner = filters.owner.trim().to_lowercase();
    let rows: Vec<KeyRow> = keys
        .into_iter()
        .filter(|k| owner.is_empty() || k.holder().to_string().to_lowercase().contains(&owner))
        .map(|k| row(&state, k, now))
        .filter(|r| match filters.status.as_str() {
            "" => true,
            "expiring" => r.expiring,
            "pending" => r.status() == KeyStatus::Pending,
            "active" => r.status() == KeyStatus::Active,
            "expired" => r.status() == KeyStatus::Expired,
            "revoked" => r.status() == KeyStatus::Revoked,
            _ => false,
        })
        .collect();
    Ok(page(
        StatusCode::OK,
        "keys",
        &viewer.layout(&state, "All keys", "all-keys"),
        minijinja::context! {
            keys => rows,
            all_keys => true,
            may_create => viewer.session.user.can_create_keys,
            filters,
        },
    ))
}
