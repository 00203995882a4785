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
use crate::name::{Repository, check_namespace};
use crate::signing::PublicKey;
use crate::statement::{Action, Change, STATEMENT_HEADER, Statement};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

/// The largest body `PUT /toolmesh/v1/owners/<namespace>` reads.
const MAX_KEY_BODY: usize = 4096;

fn denied(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "DENIED", message)
}

/// The key whose valid statement of `change` the request carries, if any.
/// A statement that does not verify is refused, never ignored.
fn signer(headers: &HeaderMap, change: &Change) -> Result<Option<PublicKey>, ApiError> {
    let Some(value) = headers.get(STATEMENT_HEADER) else { return Ok(None) };
    let text = value.to_str().map_err(|_| denied(format!("the {STATEMENT_HEADER} header is not text")))?;
    let statement = Statement::from_header(text).map_err(|e| denied(e.to_string()))?;
    statement
        .verify(change, std::time::SystemTime::now())
        .map(Some)
        .map_err(|e| denied(format!("the publisher's statement is refused: {e}")))
}

/// What a checked request may do.
pub(crate) enum Permit {
    /// Go ahead.
    Granted,
    /// Go ahead; the namespace is unowned and empty, and this signed push
    /// claims it for its key.
    Claim(PublicKey),
}

/// Checks that the request may make `change` in `namespace`: any request
/// while the namespace is unowned, else one signed by an owner. A signed
/// push into a namespace that is unowned and holds nothing yet may claim
/// it; one that already holds tools (published unsigned, or before
/// ownership existed) is never claimed by whoever signs next.
pub(crate) async fn check(
    state: &AppState,
    headers: &HeaderMap,
    namespace: &str,
    change: &Change,
) -> Result<Permit, ApiError> {
    let key = signer(headers, change)?;
    let owners = state.store.owners(namespace).await?;
    if owners.is_empty() {
        if let Some(key) = key.filter(|_| change.action == Action::Push)
            && state.store.namespace_is_empty(namespace).await?
        {
            return Ok(Permit::Claim(key));
        }
        return Ok(Permit::Granted);
    }
    let ids = owners.iter().map(PublicKey::key_id).collect::<Vec<_>>().join(", ");
    match key {
        Some(key) if owners.contains(&key) => Ok(Permit::Granted),
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

/// Makes `change` in `namespace` with `apply`, if the request may (see
/// [`check`]). A push that claims the namespace claims it before it is
/// applied, so of racing claimants exactly one gets in, and gives the
/// claim back if it fails.
pub(crate) async fn guarded<T>(
    state: &AppState,
    headers: &HeaderMap,
    namespace: &str,
    change: &Change,
    apply: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let claimed = match check(state, headers, namespace, change).await? {
        Permit::Granted => None,
        Permit::Claim(key) if state.store.claim_namespace(namespace, &key).await? => Some(key),
        // Another claim came first: the request must now pass as an owner's.
        Permit::Claim(_) => match check(state, headers, namespace, change).await? {
            Permit::Granted => None,
            Permit::Claim(_) => return Err(denied(format!("namespace `{namespace}` is being claimed; try again"))),
        },
    };
    let result = apply.await;
    if let Some(key) = claimed {
        match &result {
            Ok(_) => tracing::info!(namespace, key = %key.key_id(), "namespace claimed"),
            Err(_) => state.store.release_claim(namespace, &key).await?,
        }
    }
    result
}

/// The change a manifest push of `digest` as `reference` into `repo` makes.
pub(crate) fn push_change(repo: &Repository, reference: &str, digest: &crate::digest::Digest) -> Change {
    Change {
        action: Action::Push,
        repository: repo.to_string(),
        reference: reference.to_owned(),
        subject: digest.to_string(),
    }
}

/// `GET` lists the owners of `namespace`; `PUT` adds the key in the body.
pub(crate) async fn handler(
    State(state): State<AppState>,
    method: axum::http::Method,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let namespace = check_namespace(&namespace)?;
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
            // A public key is one short line; nothing larger is read.
            let body = axum::body::to_bytes(body, MAX_KEY_BODY).await.map_err(|_| {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "KEY_INVALID", "the body must be one public key")
            })?;
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
            guarded(&state, &headers, namespace, &change, async { Ok(state.store.add_owner(namespace, &key).await?) })
                .await?;
            tracing::info!(namespace, key = %key.key_id(), "owner added");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(ApiError::unsupported("GET lists a namespace's owners, PUT adds one")),
    }
}
