//! A client of the OCI distribution API: pushes and pulls blobs and
//! manifests, verifying every digest it receives.

use crate::api::CatalogEntry;
use crate::digest::Digest;
use crate::name::{ManifestRef, Repository};
use crate::oci::{self, Descriptor};
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};

/// Blobs up to this size go up in one request; larger ones in chunks of it.
pub const CHUNK: usize = 8 << 20;

/// A failure talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request did not complete.
    #[error("cannot reach the registry at {url}: {source}")]
    Transport {
        /// What was asked for.
        url: String,
        /// Why it failed.
        source: reqwest::Error,
    },
    /// The registry answered with an error.
    #[error("registry refused {what}: {status} {code}: {message}")]
    Registry {
        /// What was being done.
        what: String,
        /// HTTP status.
        status: StatusCode,
        /// Spec error code, such as `MANIFEST_UNKNOWN`.
        code: String,
        /// The registry's message.
        message: String,
    },
    /// Content did not hash to its digest: refuse it.
    #[error("{what} hashes to {actual}, not {expected}: refusing it")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// What it should hash to.
        expected: Digest,
        /// What it hashes to.
        actual: Digest,
    },
    /// The registry's answer is malformed.
    #[error("unexpected answer from the registry: {0}")]
    Protocol(String),
}

/// A registry at a base URL, with an optional token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of the registry at `base` (such as `http://127.0.0.1:5000`).
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("toolmesh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Transport { url: base.to_owned(), source })?;
        Ok(Client { http, base: base.trim_end_matches('/').to_owned(), token })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let builder = self.http.request(method, url);
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    async fn send(&self, what: &str, builder: RequestBuilder) -> Result<Response, ClientError> {
        let request = builder.build().map_err(|source| ClientError::Transport { url: what.to_owned(), source })?;
        let url = request.url().to_string();
        let response = self.http.execute(request).await.map_err(|source| ClientError::Transport { url, source })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let first = &body["errors"][0];
        Err(ClientError::Registry {
            what: what.to_owned(),
            status,
            code: first["code"].as_str().unwrap_or("UNKNOWN").to_owned(),
            message: first["message"].as_str().unwrap_or("").to_owned(),
        })
    }

    /// Checks the registry answers `GET /v2/`.
    pub async fn ping(&self) -> Result<(), ClientError> {
        self.send("the API check", self.request(Method::GET, "/v2/")).await.map(drop)
    }

    /// Whether blob `digest` is already in `repo`.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<bool, ClientError> {
        match self.send("a blob check", self.request(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))).await {
            Ok(_) => Ok(true),
            Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Pushes `bytes` as a blob of `repo` unless it is there already; calls
    /// `progress` with the bytes sent so far. Returns its digest.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        bytes: Bytes,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Digest, ClientError> {
        let digest = Digest::of(&bytes);
        if self.blob_exists(repo, &digest).await? {
            progress(bytes.len() as u64);
            return Ok(digest);
        }
        let what = format!("the upload of {digest}");
        if bytes.len() <= CHUNK {
            let len = bytes.len() as u64;
            let builder = self
                .request(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes);
            self.send(&what, builder).await?;
            progress(len);
            return Ok(digest);
        }
        let started = self.send(&what, self.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))).await?;
        let mut location = location(&started)?;
        let mut offset = 0usize;
        while offset < bytes.len() {
            let end = (offset + CHUNK).min(bytes.len());
            let builder = self
                .request(Method::PATCH, &location)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .header(header::CONTENT_RANGE, format!("{offset}-{}", end - 1))
                .body(bytes.slice(offset..end));
            let response = self.send(&what, builder).await?;
            location = location_or(&response, location);
            offset = end;
            progress(offset as u64);
        }
        let separator = if location.contains('?') { '&' } else { '?' };
        let finish = self.request(Method::PUT, &format!("{location}{separator}digest={digest}"));
        self.send(&what, finish).await?;
        Ok(digest)
    }

    /// Pushes a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<Digest, ClientError> {
        let digest = Digest::of(&bytes);
        let builder = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header(header::CONTENT_TYPE, media_type)
            .body(bytes);
        self.send(&format!("manifest {repo}:{reference}"), builder).await?;
        Ok(digest)
    }

    /// Fetches manifest `reference` of `repo`: its bytes, digest and media
    /// type. When fetched by digest, the bytes must hash to it.
    pub async fn pull_manifest(
        &self,
        repo: &Repository,
        reference: &ManifestRef,
    ) -> Result<(Vec<u8>, Digest, String), ClientError> {
        let accept = [oci::MANIFEST_MEDIA_TYPE, oci::INDEX_MEDIA_TYPE].join(", ");
        let builder =
            self.request(Method::GET, &format!("/v2/{repo}/manifests/{reference}")).header(header::ACCEPT, accept);
        let what = format!("manifest {repo}:{reference}");
        let response = self.send(&what, builder).await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(oci::MANIFEST_MEDIA_TYPE)
            .to_owned();
        let claimed = response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let bytes =
            response.bytes().await.map_err(|source| ClientError::Transport { url: what.clone(), source })?.to_vec();
        let actual = Digest::of(&bytes);
        let expected = match reference {
            ManifestRef::Digest(d) => Some(*d),
            ManifestRef::Tag(_) => claimed,
        };
        if let Some(expected) = expected
            && expected != actual
        {
            return Err(ClientError::DigestMismatch { what, expected, actual });
        }
        Ok((bytes, actual, media_type))
    }

    /// Fetches blob `digest` of `repo`, verifying that it hashes to `digest`.
    pub async fn pull_blob(&self, repo: &Repository, digest: &Digest) -> Result<Bytes, ClientError> {
        let what = format!("blob {digest}");
        let response = self.send(&what, self.request(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))).await?;
        let bytes = response.bytes().await.map_err(|source| ClientError::Transport { url: what.clone(), source })?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(ClientError::DigestMismatch { what, expected: *digest, actual });
        }
        Ok(bytes)
    }

    /// The manifests of `repo` whose subject is `digest`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &Repository,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, ClientError> {
        let mut builder = self.request(Method::GET, &format!("/v2/{repo}/referrers/{digest}"));
        if let Some(t) = artifact_type {
            builder = builder.query(&[("artifactType", t)]);
        }
        let response = self.send(&format!("the referrers of {digest}"), builder).await?;
        let index: serde_json::Value =
            response.json().await.map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))?;
        let mut found: Vec<Descriptor> = serde_json::from_value(index["manifests"].clone())
            .map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))?;
        // Registries need not filter; do it here too.
        if let Some(t) = artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(found)
    }

    /// The tags of `repo`.
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>, ClientError> {
        let response = self
            .send(&format!("the tags of {repo}"), self.request(Method::GET, &format!("/v2/{repo}/tags/list")))
            .await?;
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(body["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect())
    }

    /// Searches a toolmesh registry's catalog.
    pub async fn catalog(&self, query: Option<&str>) -> Result<Vec<CatalogEntry>, ClientError> {
        let mut builder = self.request(Method::GET, "/toolmesh/v1/catalog");
        if let Some(q) = query {
            builder = builder.query(&[("q", q)]);
        }
        let response = self.send("the catalog", builder).await?;
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        serde_json::from_value(body["tools"].clone()).map_err(|e| ClientError::Protocol(format!("catalog: {e}")))
    }
}

fn location(response: &Response) -> Result<String, ClientError> {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::Protocol("upload response without a Location".into()))
}

fn location_or(response: &Response, previous: String) -> String {
    location(response).unwrap_or(previous)
}
