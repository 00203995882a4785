//! `PUT /toolmesh/v1/yanked/<name>/<version>` yanks a version: the catalog
//! stops offering it, and everything already pinned to it (by version or
//! digest) still pulls. `DELETE` on the same path restores it. Both need a
//! push token, and in an owned namespace an owner's signed statement. Not
//! part of the OCI distribution API, like the catalog.

use super::error::ApiError;
use super::{Access, AppState};
use crate::name::{Repository, Tag};
use crate::statement::{Action, Change};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};

/// Yanks (`PUT`) or restores (`DELETE`) the version at `rest` (`<name>/<version>`).
pub(crate) async fn handler(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.authorize(&headers, Access::Push)?;
    let yanked = match method {
        Method::PUT => true,
        Method::DELETE => false,
        _ => return Err(ApiError::unsupported("PUT yanks a version, DELETE restores it")),
    };
    let (name, version) = rest.rsplit_once('/').ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "expected /toolmesh/v1/yanked/<name>/<version>")
    })?;
    let repo: Repository = name.parse()?;
    let tag: Tag = version.parse()?;
    let action = if yanked { Action::Yank } else { Action::Unyank };
    let change = Change { action, repository: repo.to_string(), reference: tag.to_string(), subject: String::new() };
    let set = async { Ok(state.store.set_yanked(&repo, &tag, yanked).await?) };
    super::owners::guarded(&state, &headers, repo.namespace(), &change, set).await?;
    Ok(StatusCode::NO_CONTENT)
}
