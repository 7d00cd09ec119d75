//! What the admin pages share: the admin check and reading scopes.

use actix_web::HttpRequest;

use crate::http::console::{Current, PageError, Viewer, viewer};
use crate::http::error::AppError;
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
