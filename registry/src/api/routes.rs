//! Request routing and the distribution-spec handlers.

use super::error::{ApiError, range_header};
use super::{Access, AppState};
use crate::digest::Digest;
use crate::name::{ManifestRef, Repository};
use crate::oci;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use serde_json::json;
use std::collections::HashMap;

type Params = Query<HashMap<String, String>>;

/// `GET /v2/`. Like the big public registries, it challenges a request
/// without credentials whenever this registry has any, even when anonymous
/// pulls are allowed: clients (oci-client, docker) read the challenge here
/// to learn that they should send the credentials they hold.
pub(crate) async fn base(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let has_credentials = headers.contains_key(header::AUTHORIZATION);
    if !has_credentials && !state.access.push_tokens.is_empty() {
        return Err(ApiError::unauthorized());
    }
    state.authorize(&headers, Access::Pull)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
}

/// What a `/v2/<rest>` path addresses.
#[derive(Debug, PartialEq)]
enum Target<'a> {
    Catalog,
    Tags(&'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Manifest(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

/// Splits `rest` into what it addresses. The last segment (digest, tag or
/// upload id) never contains `/`, so the name is everything before its marker.
fn route(rest: &str) -> Option<Target<'_>> {
    if rest == "_catalog" {
        return Some(Target::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Target::Tags(name));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(Target::Uploads(name));
    }
    let (head, last) = rest.rsplit_once('/')?;
    if let Some(name) = head.strip_suffix("/blobs/uploads") {
        Some(Target::Upload(name, last))
    } else if let Some(name) = head.strip_suffix("/blobs") {
        Some(Target::Blob(name, last))
    } else if let Some(name) = head.strip_suffix("/manifests") {
        Some(Target::Manifest(name, last))
    } else {
        head.strip_suffix("/referrers").map(|name| Target::Referrers(name, last))
    }
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

fn digest_param(text: Option<&String>) -> Result<Digest, ApiError> {
    let text = text.ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", "missing ?digest="))?;
    text.parse().map_err(|e: crate::digest::DigestError| {
        ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// All `/v2/<name>/…` requests.
pub(crate) async fn dispatch(
    State(state): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = route(&rest).ok_or_else(not_found)?;
    let access = if matches!(method, Method::GET | Method::HEAD) { Access::Pull } else { Access::Push };
    state.authorize(&headers, access)?;
    let repo = |name: &str| name.parse::<Repository>().map_err(ApiError::from);
    match (target, method) {
        (Target::Catalog, Method::GET) => {
            let repos: Vec<String> = state.store.repositories().await?.iter().map(|r| r.to_string()).collect();
            Ok(axum::Json(json!({ "repositories": repos })).into_response())
        }
        (Target::Tags(name), Method::GET) => tags(&state, &repo(name)?, &params).await,
        (Target::Blob(name, digest), m @ (Method::GET | Method::HEAD)) => {
            // Blobs are content-addressed and shared; the name is only validated.
            repo(name)?;
            get_blob(&state, digest, m == Method::HEAD).await
        }
        (Target::Uploads(name), Method::POST) => start_upload(&state, &repo(name)?, &params, body).await,
        (Target::Upload(name, id), Method::PATCH) => patch_upload(&state, &repo(name)?, id, &headers, body).await,
        (Target::Upload(name, id), Method::PUT) => finish_upload(&state, &repo(name)?, id, &params, body).await,
        (Target::Upload(name, id), Method::GET) => {
            let repo = repo(name)?;
            let status = state.store.upload_status(&repo, id).await?;
            Ok(upload_response(StatusCode::NO_CONTENT, &repo, id, status.offset))
        }
        (Target::Upload(name, id), Method::DELETE) => {
            state.store.cancel_upload(&repo(name)?, id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (Target::Manifest(name, reference), m @ (Method::GET | Method::HEAD)) => {
            get_manifest(&state, &repo(name)?, reference, m == Method::HEAD).await
        }
        (Target::Manifest(name, reference), Method::PUT) => {
            put_manifest(&state, &repo(name)?, reference, &headers, body).await
        }
        (Target::Referrers(name, digest), Method::GET) => referrers(&state, &repo(name)?, digest, &params).await,
        (_, Method::DELETE) => Err(ApiError::unsupported("this registry does not delete content")),
        _ => Err(ApiError::unsupported("method not allowed here")),
    }
}

async fn get_blob(state: &AppState, digest: &str, head: bool) -> Result<Response, ApiError> {
    let digest: Digest = digest.parse().map_err(|e: crate::digest::DigestError| {
        ApiError::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string())
    })?;
    let mut headers = HeaderMap::new();
    headers.insert("Docker-Content-Digest", header_value(&digest.to_string()));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    // Even HEAD hashes the blob: a damaged copy must not look present, or
    // clients would skip the upload that repairs it.
    let (file, size) = state.store.open_blob(&digest).await?;
    headers.insert(header::CONTENT_LENGTH, size.into());
    if head {
        return Ok((StatusCode::OK, headers).into_response());
    }
    let stream = tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 256 << 10);
    Ok((StatusCode::OK, headers, Body::from_stream(stream)).into_response())
}

fn upload_response(status: StatusCode, repo: &Repository, id: &str, offset: u64) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/uploads/{id}")));
    headers.insert(header::RANGE, header_value(&range_header(offset)));
    headers.insert("Docker-Upload-UUID", header_value(id));
    headers.insert(header::CONTENT_LENGTH, 0.into());
    (status, headers).into_response()
}

fn blob_created(repo: &Repository, digest: &Digest) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::LOCATION, header_value(&format!("/v2/{repo}/blobs/{digest}")));
    headers.insert("Docker-Content-Digest", header_value(&digest.to_string()));
    headers.insert(header::CONTENT_LENGTH, 0.into());
    (StatusCode::CREATED, headers).into_response()
}

fn body_stream(body: Body) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Unpin {
    body.into_data_stream().map_err(std::io::Error::other)
}

async fn start_upload(
    state: &AppState,
    repo: &Repository,
    params: &HashMap<String, String>,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(mount) = params.get("mount") {
        let digest = digest_param(Some(mount))?;
        if state.store.blob_size(&digest).await?.is_some() {
            return Ok(blob_created(repo, &digest));
        }
    } else if params.contains_key("digest") {
        let digest = digest_param(params.get("digest"))?;
        state.store.put_blob_stream(digest, body_stream(body)).await?;
        return Ok(blob_created(repo, &digest));
    }
    let id = state.store.start_upload(repo).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repo, &id, 0))
}

/// The start of a `Content-Range: <start>-<end>` header, if present.
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let invalid = || ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "malformed Content-Range");
    let text = value.to_str().map_err(|_| invalid())?;
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.trim().parse().map_err(|_| invalid())?;
    let end: u64 = end.split('/').next().unwrap_or("").trim().parse().map_err(|_| invalid())?;
    if end < start {
        return Err(invalid());
    }
    Ok(Some(start))
}

async fn patch_upload(
    state: &AppState,
    repo: &Repository,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let start = content_range_start(headers)?;
    let status = state.store.append_upload(repo, id, start, body_stream(body)).await?;
    Ok(upload_response(StatusCode::ACCEPTED, repo, id, status.offset))
}

async fn finish_upload(
    state: &AppState,
    repo: &Repository,
    id: &str,
    params: &HashMap<String, String>,
    body: Body,
) -> Result<Response, ApiError> {
    let digest = digest_param(params.get("digest"))?;
    state.store.append_upload(repo, id, None, body_stream(body)).await?;
    state.store.finish_upload(repo, id, digest).await?;
    Ok(blob_created(repo, &digest))
}

async fn get_manifest(state: &AppState, repo: &Repository, reference: &str, head: bool) -> Result<Response, ApiError> {
    let reference: ManifestRef = reference.parse()?;
    let (bytes, digest, media_type) = state.store.get_manifest(repo, &reference).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header_value(&media_type));
    headers.insert("Docker-Content-Digest", header_value(&digest.to_string()));
    headers.insert(header::CONTENT_LENGTH, bytes.len().into());
    if head {
        return Ok((StatusCode::OK, headers).into_response());
    }
    Ok((StatusCode::OK, headers, bytes).into_response())
}

async fn put_manifest(
    state: &AppState,
    repo: &Repository,
    reference: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let reference: ManifestRef = reference.parse()?;
    let limit = state.store.config().max_manifest;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
            format!("manifest is larger than {limit} bytes"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|len| len > limit)
    {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit as usize).await.map_err(|_| too_large())?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let change = super::owners::push_change(repo, &reference.to_string(), &Digest::of(&bytes));
    let put = async { Ok(state.store.put_manifest(repo, &reference, &bytes, content_type).await?) };
    let (digest, subject) = super::owners::guarded(state, headers, repo.namespace(), &change, put).await?;
    let mut out = HeaderMap::new();
    out.insert(header::LOCATION, header_value(&format!("/v2/{repo}/manifests/{digest}")));
    out.insert("Docker-Content-Digest", header_value(&digest.to_string()));
    if let Some(subject) = subject {
        out.insert("OCI-Subject", header_value(&subject.to_string()));
    }
    out.insert(header::CONTENT_LENGTH, 0.into());
    Ok((StatusCode::CREATED, out).into_response())
}

async fn tags(state: &AppState, repo: &Repository, params: &HashMap<String, String>) -> Result<Response, ApiError> {
    let mut tags = state.store.tags(repo).await?;
    if let Some(last) = params.get("last") {
        tags.retain(|t| t.as_str() > last.as_str());
    }
    let mut headers = HeaderMap::new();
    if let Some(n) = params.get("n").and_then(|n| n.parse::<usize>().ok())
        && tags.len() > n
    {
        tags.truncate(n);
        if let Some(last) = tags.last() {
            headers
                .insert(header::LINK, header_value(&format!("</v2/{repo}/tags/list?n={n}&last={last}>; rel=\"next\"")));
        }
    }
    Ok((headers, axum::Json(json!({ "name": repo.as_str(), "tags": tags }))).into_response())
}

async fn referrers(
    state: &AppState,
    repo: &Repository,
    digest: &str,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let subject = digest_param(Some(&digest.to_owned()))?;
    let mut found = state.store.referrers(repo, &subject).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(oci::INDEX_MEDIA_TYPE));
    if let Some(wanted) = params.get("artifactType") {
        found.retain(|d| d.artifact_type.as_deref() == Some(wanted.as_str()));
        headers.insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": oci::INDEX_MEDIA_TYPE, "manifests": found });
    Ok((headers, index.to_string()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_names_with_marker_like_components() {
        assert_eq!(route("a/b/tags/list"), Some(Target::Tags("a/b")));
        assert_eq!(route("a/blobs/uploads/"), Some(Target::Uploads("a")));
        assert_eq!(route("a/blobs/uploads/abc"), Some(Target::Upload("a", "abc")));
        assert_eq!(route("x/manifests/y/blobs/sha256:1"), Some(Target::Blob("x/manifests/y", "sha256:1")));
        assert_eq!(route("x/blobs/y/manifests/v1"), Some(Target::Manifest("x/blobs/y", "v1")));
        assert_eq!(route("n/referrers/sha256:1"), Some(Target::Referrers("n", "sha256:1")));
        assert_eq!(route("_catalog"), Some(Target::Catalog));
        assert_eq!(route("nothing"), None);
    }
}
