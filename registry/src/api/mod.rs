//! The OCI distribution HTTP API (pull and push) over an [`FsStore`], plus
//! toolmesh's catalog endpoint.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/v2/` | API check |
//! | GET, HEAD | `/v2/<name>/blobs/<digest>` | fetch a blob (hashed before it is served) |
//! | POST | `/v2/<name>/blobs/uploads/` | start an upload; with `?digest=` a monolithic upload; with `?mount=` a mount |
//! | PATCH | `/v2/<name>/blobs/uploads/<id>` | append a chunk (`Content-Range` must continue the upload, else 416) |
//! | PUT | `/v2/<name>/blobs/uploads/<id>?digest=` | finish an upload (the digest must match) |
//! | GET, DELETE | `/v2/<name>/blobs/uploads/<id>` | upload status, cancel |
//! | GET, HEAD, PUT | `/v2/<name>/manifests/<tag or digest>` | manifests |
//! | GET | `/v2/<name>/tags/list` | tags (`?n=`, `?last=`) |
//! | GET | `/v2/<name>/referrers/<digest>` | manifests whose subject is the digest (`?artifactType=`) |
//! | GET | `/v2/_catalog` | repositories |
//! | GET | `/toolmesh/v1/catalog?q=` | published tools with their metadata (yanked versions left out) |
//! | PUT, DELETE | `/toolmesh/v1/yanked/<name>/<version>` | yank a version, restore it (push token) |
//! | GET, PUT | `/toolmesh/v1/owners/<namespace>` | a namespace's owner keys; add one (an owner's statement) |
//!
//! Pushing needs a token (Bearer, or the password of Basic auth); pulling
//! needs one only when pull tokens are configured. In a namespace that a
//! publisher owns, pushes and yanks also need that publisher's signed
//! statement ([`crate::statement`]); see [`owners`]. Request logs carry
//! method, path, status and time, never credentials.

mod catalog;
mod error;
mod owners;
mod routes;
mod versions;
mod yank;

pub use catalog::{CatalogEntry, catalog_entries, entry as catalog_entry, newest_versions};
pub use error::ApiError;
pub use versions::{VersionInfo, package_versions, signers};

use crate::store::FsStore;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{any, get};
use base64::Engine as _;
use std::sync::Arc;
use std::time::Instant;

/// Who may push and pull.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Tokens that may push (and pull).
    pub push_tokens: Vec<String>,
    /// Tokens that may pull; empty means anyone may pull.
    pub pull_tokens: Vec<String>,
    /// Let anyone push. Only for a registry reachable from this machine alone.
    pub anonymous_push: bool,
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Pull,
    Push,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: FsStore,
    pub(crate) access: Arc<AccessConfig>,
}

impl AppState {
    /// Checks the request's credentials for `access`.
    pub(crate) fn authorize(&self, headers: &HeaderMap, access: Access) -> Result<(), ApiError> {
        let token = presented_token(headers);
        let matches = |tokens: &[String]| token.as_deref().is_some_and(|t| tokens.iter().any(|k| constant_eq(k, t)));
        match access {
            Access::Pull if self.access.pull_tokens.is_empty() => Ok(()),
            Access::Pull if matches(&self.access.pull_tokens) || matches(&self.access.push_tokens) => Ok(()),
            Access::Push if self.access.anonymous_push || matches(&self.access.push_tokens) => Ok(()),
            Access::Push if matches(&self.access.pull_tokens) => Err(ApiError::denied()),
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The token of an `Authorization: Bearer …` header, if the request has one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The token of a `Bearer` header, or the password of a `Basic` one.
fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(token) = bearer_token(headers) {
        return Some(token.to_owned());
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, password)| password.to_owned())
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The registry's HTTP routes over `store`.
pub fn router(store: FsStore, access: AccessConfig) -> Router {
    let state = AppState { store, access: Arc::new(access) };
    Router::new()
        .route("/v2/", get(routes::base))
        .route("/v2", get(routes::base))
        .route("/v2/{*path}", any(routes::dispatch))
        .route("/toolmesh/v1/catalog", get(catalog::handler))
        .route("/toolmesh/v1/yanked/{*path}", any(yank::handler))
        .route("/toolmesh/v1/owners/{namespace}", any(owners::handler))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: method, path, status, time. Never headers.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        target: "toolmesh::registry",
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn tokens_from_bearer_and_basic() {
        assert_eq!(presented_token(&headers("Bearer abc")).as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("user:s3cret");
        assert_eq!(presented_token(&headers(&format!("Basic {basic}"))).as_deref(), Some("s3cret"));
        assert_eq!(presented_token(&HeaderMap::new()), None);
        assert_eq!(bearer_token(&headers("bearer  xyz ")), Some("xyz"), "the scheme is case-insensitive");
        assert_eq!(bearer_token(&headers("Bearer ")), None);
        assert_eq!(bearer_token(&headers("Token abc")), None);
        assert!(constant_eq("abc", "abc"));
        assert!(!constant_eq("abc", "abd"));
        assert!(!constant_eq("abc", "ab"));
    }
}
