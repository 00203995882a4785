//! A client of the OCI distribution API: pushes and pulls blobs and
//! manifests, verifying every digest it receives.
//!
//! - this module: the client, its credentials ([`crate::auth`]), blobs and
//!   manifests;
//! - `listing`: referrers, tags, repositories and the catalog of tools;
//! - `tls`: TLS with the public roots and a private CA.

use crate::auth::{self, Challenge, Credentials};
use crate::digest::Digest;
use crate::name::{ManifestRef, Repository};
use crate::oci;
use crate::statement::{Action, Change};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response, StatusCode, header};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    /// The client's own settings are unusable (such as an unreadable CA file).
    #[error("{0}")]
    Config(String),
}

mod listing;
mod owners;
mod tls;

pub use tls::http_builder;
use tls::tls_config;

/// A registry at a base URL, and how to prove who the client is there.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    /// Tokens from the registry's token service, by scope.
    tokens: Arc<Mutex<HashMap<String, String>>>,
    /// The publisher key whose statements go with pushes, yanks and owner
    /// changes (see [`Client::signed_by`]).
    signer: Option<Arc<crate::signing::SecretKey>>,
}

/// How a [`Client`] connects and authenticates.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Credentials for the registry (and its token service).
    pub credentials: Credentials,
    /// A PEM file of CA certificates to trust beyond the public roots
    /// (a registry with a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Client {
    /// A client of the registry at `base` (such as `http://127.0.0.1:5000`)
    /// that sends `token`, if any, as a bearer token.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, ClientError> {
        let credentials = token.map_or(Credentials::Anonymous, Credentials::Token);
        Self::with_options(base, ClientOptions { credentials, ca_file: None })
    }

    /// A client of the registry at `base` with `options`.
    pub fn with_options(base: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let tls = tls_config(options.ca_file.as_deref()).map_err(ClientError::Config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("toolmesh/", env!("CARGO_PKG_VERSION")))
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|source| ClientError::Transport { url: base.to_owned(), source })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            credentials: options.credentials,
            tokens: Arc::default(),
            signer: None,
        })
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
        self.http.request(method, url)
    }

    /// Adds the credentials for `request`: a token for its scope when the
    /// token service gave one, else the fixed token or Basic credentials.
    fn authorize(&self, request: &mut reqwest::Request) {
        // Credentials go to the registry itself only, never to another
        // origin an upload Location points at.
        if !same_origin(request.url(), &self.base) {
            return;
        }
        let scope = auth::scope_of(request.method(), request.url().path());
        let cached = self.tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&scope).cloned();
        let value = match (&cached, &self.credentials) {
            (Some(token), _) | (None, Credentials::Token(token)) => format!("Bearer {token}"),
            (None, Credentials::Basic { user, password }) => {
                format!("Basic {}", BASE64.encode(format!("{user}:{password}")))
            }
            (None, Credentials::Anonymous) => return,
        };
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
    }

    /// Trades the client's credentials for a token at the service a
    /// Bearer challenge names, and keeps it for `scope`.
    async fn fetch_token(&self, challenge: &Challenge, scope: String) -> Result<String, ClientError> {
        let url = challenge.token_url().ok_or_else(|| {
            ClientError::Protocol(format!("the registry asks for a token from an unusable realm: {challenge:?}"))
        })?;
        if url.scheme() == "http" && self.base.starts_with("https://") {
            return Err(ClientError::Protocol(format!(
                "the registry asks for credentials to be sent in clear text to {url}; refusing"
            )));
        }
        let what = format!("a token from {}", url.origin().ascii_serialization());
        let mut builder = self.http.get(url.clone());
        if let Credentials::Basic { user, password } = &self.credentials {
            builder = builder.basic_auth(user, Some(password));
        }
        let response = builder.send().await.map_err(|source| ClientError::Transport { url: what.clone(), source })?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Registry {
                what,
                status,
                code: "TOKEN".into(),
                message: "the token service refused the credentials".into(),
            });
        }
        let body: serde_json::Value =
            response.json().await.map_err(|e| ClientError::Protocol(format!("token answer: {e}")))?;
        let token = body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClientError::Protocol("the token service's answer has no token".into()))?
            .to_owned();
        self.tokens.lock().unwrap_or_else(|e| e.into_inner()).insert(scope, token.clone());
        Ok(token)
    }

    async fn send(&self, what: &str, builder: RequestBuilder) -> Result<Response, ClientError> {
        let mut request = builder.build().map_err(|source| ClientError::Transport { url: what.to_owned(), source })?;
        self.authorize(&mut request);
        let retry = request.try_clone();
        let url = request.url().to_string();
        let transport = |source| ClientError::Transport { url: url.clone(), source };
        let mut response = self.http.execute(request).await.map_err(transport)?;
        // A token service named by the challenge: get a token and ask again, once.
        if response.status() == StatusCode::UNAUTHORIZED
            && let Some(mut retry) = retry
            && let Some(challenge) = response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(Challenge::parse)
                .filter(|c| c.scheme == "bearer" && c.params.contains_key("realm"))
        {
            let scope = auth::scope_of(retry.method(), retry.url().path());
            let token = self.fetch_token(&challenge, scope).await?;
            let value = header::HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Protocol("the token service gave an unusable token".into()))?;
            retry.headers_mut().insert(header::AUTHORIZATION, value);
            response = self.http.execute(retry).await.map_err(transport)?;
        }
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
                .body(bytes.clone());
            let response = self.send(&what, builder).await?;
            // 201: stored. 202: the registry only opened an upload session
            // (single-request uploads are optional): finish it with a PUT.
            if response.status() == StatusCode::ACCEPTED {
                let location = location(&response)?;
                let separator = if location.contains('?') { '&' } else { '?' };
                let finish = self
                    .request(Method::PUT, &format!("{location}{separator}digest={digest}"))
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(bytes);
                self.send(&what, finish).await?;
            }
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
        let change = Change {
            action: Action::Push,
            repository: repo.to_string(),
            reference: reference.to_string(),
            subject: digest.to_string(),
        };
        let builder = self
            .request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header(header::CONTENT_TYPE, media_type)
            .body(bytes);
        let builder = self.with_statement(builder, change);
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
}

/// Whether `url` has the origin (scheme, host and port) of `base`.
/// Whether `url` names this machine (`localhost` or a loopback address).
pub fn is_loopback(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else { return false };
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn same_origin(url: &reqwest::Url, base: &str) -> bool {
    reqwest::Url::parse(base).is_ok_and(|base| base.origin() == url.origin())
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
