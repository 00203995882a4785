//! Namespace ownership. A namespace (`acme` of `acme/tool`) belongs to the
//! publisher key whose signed push first went into it; its owners may add
//! other keys. In an owned namespace every push, yank and owner change
//! needs a statement signed by an owner ([`crate::statement`]); an
//! unowned namespace takes unsigned pushes too, as any OCI registry does.
//! The push token is still needed for all of them.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | `/toolmesh/v1/owners/<namespace>` | the owner keys |
//! | PUT | `/toolmesh/v1/owners/<namespace>` | add the key in the body (an owner's statement) |

use super::error::ApiError;
use super::{Access, AppState};
use crate::name::Repository;
use crate::signing::PublicKey;
use crate::statement::{Action, Change, STATEMENT_HEADER, Statement};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

fn denied(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "DENIED", message)
}

/// The key whose valid statement of `change` the request carries, if any.
/// A statement that does not verify is refused, never ignored.
fn signer(headers: &HeaderMap, change: &Change) -> Result<Option<PublicKey>, ApiError> {
    let Some(value) = headers.get(STATEMENT_HEADER) else { return Ok(None) };
    let text = value.to_str().map_err(|_| denied(format!("the {STATEMENT_HEADER} header is not text")))?;
    let statement = Statement::from_header(text).map_err(|e| denied(e.to_string()))?;
    statement.verify(change).map(Some).map_err(|e| denied(format!("the publisher's statement is refused: {e}")))
}

/// Checks that the request may make `change` in `namespace`: any request
/// while the namespace is unowned, else one signed by an owner. A signed
/// push into an unowned namespace claims it for its key.
pub(crate) async fn check(
    state: &AppState,
    headers: &HeaderMap,
    namespace: &str,
    change: &Change,
) -> Result<(), ApiError> {
    let key = signer(headers, change)?;
    let mut owners = state.store.owners(namespace).await?;
    if owners.is_empty() {
        let Some(key) = key.as_ref().filter(|_| change.action == Action::Push) else { return Ok(()) };
        if state.store.claim_namespace(namespace, key).await? {
            tracing::info!(namespace, key = %key.key_id(), "namespace claimed");
            return Ok(());
        }
        // Another publisher's claim came first.
        owners = state.store.owners(namespace).await?;
    }
    let ids = owners.iter().map(PublicKey::key_id).collect::<Vec<_>>().join(", ");
    match key {
        Some(key) if owners.contains(&key) => Ok(()),
        Some(key) => Err(denied(format!(
            "namespace `{namespace}` belongs to other publishers (keys {ids}); key {} is not one of them: \
             publish under a namespace of your own, or ask an owner to run `tool owner add {namespace} YOUR_KEY.pub`",
            key.key_id()
        ))),
        None => Err(denied(format!(
            "namespace `{namespace}` is owned (keys {ids}): sign with an owner's key (`--key FILE`)"
        ))),
    }
}

/// Checks a manifest push of `digest` as `reference` into `repo`.
pub(crate) async fn check_push(
    state: &AppState,
    headers: &HeaderMap,
    repo: &Repository,
    reference: &str,
    digest: &crate::digest::Digest,
) -> Result<(), ApiError> {
    let change = Change {
        action: Action::Push,
        repository: repo.to_string(),
        reference: reference.to_owned(),
        subject: digest.to_string(),
    };
    check(state, headers, repo.namespace(), &change).await
}

/// `GET` lists the owners of `namespace`; `PUT` adds the key in the body.
pub(crate) async fn handler(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    // A namespace is what a repository name starts with.
    let repo: Repository = format!("{namespace}/x").parse()?;
    let namespace = repo.namespace();
    match method {
        axum::http::Method::GET => {
            state.authorize(&headers, Access::Pull)?;
            let owners: Vec<Value> = state
                .store
                .owners(namespace)
                .await?
                .iter()
                .map(|k| json!({"keyId": k.key_id(), "publicKey": k.to_text()}))
                .collect();
            Ok(axum::Json(json!({"namespace": namespace, "owners": owners})).into_response())
        }
        axum::http::Method::PUT => {
            state.authorize(&headers, Access::Push)?;
            let text = std::str::from_utf8(&body).unwrap_or_default().trim();
            let key = PublicKey::from_text(text).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "KEY_INVALID", format!("the body is not a public key: {e}"))
            })?;
            if state.store.owners(namespace).await?.is_empty() {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "NAME_UNKNOWN",
                    format!("nobody owns namespace `{namespace}` yet: the first signed push into it claims it"),
                ));
            }
            let change = Change {
                action: Action::AddOwner,
                repository: namespace.to_owned(),
                reference: String::new(),
                subject: key.to_text(),
            };
            check(&state, &headers, namespace, &change).await?;
            state.store.add_owner(namespace, &key).await?;
            tracing::info!(namespace, key = %key.key_id(), "owner added");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::unsupported("GET lists a namespace's owners, PUT adds one")),
    }
}
