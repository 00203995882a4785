//! Listings: referrers (with the OCI 1.1 fallback tag), tags, repositories,
//! and the catalog of tools.

use super::{Client, ClientError};
use crate::api::CatalogEntry;
use crate::digest::Digest;
use crate::name::{ManifestRef, Repository, Tag};
use crate::oci::{self, Descriptor};
use crate::statement::{Action, Change};
use reqwest::{Method, StatusCode, header};

impl Client {
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
        let mut found = match self.send(&format!("the referrers of {digest}"), builder).await {
            Ok(response) => {
                let index: serde_json::Value =
                    response.json().await.map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))?;
                serde_json::from_value(index["manifests"].clone())
                    .map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))?
            }
            // No referrers API (it answers 200 even when there are none):
            // the index under the fallback tag, as OCI 1.1 says.
            Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => {
                self.fallback_referrers(repo, digest).await?
            }
            Err(e) => return Err(e),
        };
        // Registries need not filter; do it here too.
        if let Some(t) = artifact_type {
            found.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(found)
    }

    /// The referrers listed under `digest`'s fallback tag (`sha256-<hex>`).
    async fn fallback_referrers(&self, repo: &Repository, digest: &Digest) -> Result<Vec<Descriptor>, ClientError> {
        let tag = fallback_tag(digest)?;
        match self.pull_manifest(repo, &ManifestRef::Tag(tag)).await {
            Ok((bytes, _, _)) => {
                let index: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))?;
                serde_json::from_value(index["manifests"].clone())
                    .map_err(|e| ClientError::Protocol(format!("referrers index: {e}")))
            }
            Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Pushes `bytes`, a manifest whose subject is `subject`, by its digest;
    /// on a registry without the referrers API, also lists it under the
    /// subject's fallback tag so that [`Client::referrers`] finds it.
    pub async fn push_referrer(
        &self,
        repo: &Repository,
        bytes: Vec<u8>,
        subject: &Digest,
        artifact_type: &str,
    ) -> Result<Digest, ClientError> {
        let mut descriptor = Descriptor::of(oci::MANIFEST_MEDIA_TYPE, &bytes);
        descriptor.artifact_type = Some(artifact_type.to_owned());
        let digest = descriptor.digest;
        self.push_manifest(repo, &ManifestRef::Digest(digest), bytes, oci::MANIFEST_MEDIA_TYPE).await?;
        let probe = self.request(Method::GET, &format!("/v2/{repo}/referrers/{subject}"));
        match self.send("the referrers API check", probe).await {
            Ok(_) => return Ok(digest),
            Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => {}
            Err(e) => return Err(e),
        }
        let mut listed = self.fallback_referrers(repo, subject).await?;
        if !listed.iter().any(|d| d.digest == digest) {
            listed.push(descriptor);
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": oci::INDEX_MEDIA_TYPE,
            "manifests": listed,
        });
        let index = serde_json::to_vec(&index).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let tag = ManifestRef::Tag(fallback_tag(subject)?);
        self.push_manifest(repo, &tag, index, oci::INDEX_MEDIA_TYPE).await?;
        Ok(digest)
    }

    /// The tags of `repo`.
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>, ClientError> {
        let response = self
            .send(&format!("the tags of {repo}"), self.request(Method::GET, &format!("/v2/{repo}/tags/list")))
            .await?;
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(body["tags"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect())
    }

    /// Yanks version `tag` of `repo` (the catalog stops offering it; pulls
    /// still work), or with `yanked` false restores it. A toolmesh
    /// registry's own endpoint: other registries answer 404.
    pub async fn set_yanked(&self, repo: &Repository, tag: &Tag, yanked: bool) -> Result<(), ClientError> {
        let (method, action) = if yanked { (Method::PUT, Action::Yank) } else { (Method::DELETE, Action::Unyank) };
        let builder = self.request(method, &format!("/toolmesh/v1/yanked/{repo}/{tag}"));
        let change =
            Change { action, repository: repo.to_string(), reference: tag.to_string(), subject: String::new() };
        let builder = self.with_statement(builder, change);
        self.send(&format!("{repo}:{tag}"), builder).await?;
        Ok(())
    }

    /// The tools published in the registry (those whose name, description
    /// or tools match `query`, if given): a toolmesh registry's catalog,
    /// or else, from any OCI registry, every tagged manifest of a Wasm tool.
    pub async fn catalog(&self, query: Option<&str>) -> Result<Vec<CatalogEntry>, ClientError> {
        let mut builder = self.request(Method::GET, "/toolmesh/v1/catalog");
        if let Some(q) = query {
            builder = builder.query(&[("q", q)]);
        }
        let response = match self.send("the catalog", builder).await {
            Ok(response) => response,
            Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => return self.walk(query).await,
            Err(e) => return Err(e),
        };
        let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        serde_json::from_value(body["tools"].clone()).map_err(|e| ClientError::Protocol(format!("catalog: {e}")))
    }

    /// The catalog read the OCI way: repositories, their tags, and each
    /// tag's manifest annotations.
    async fn walk(&self, query: Option<&str>) -> Result<Vec<CatalogEntry>, ClientError> {
        let mut entries = Vec::new();
        for repo in self.repositories().await? {
            let Ok(repo) = repo.parse::<Repository>() else { continue };
            let tags = match self.tags(&repo).await {
                Ok(tags) => tags,
                Err(ClientError::Registry { status: StatusCode::NOT_FOUND, .. }) => continue,
                Err(e) => return Err(e),
            };
            for tag in tags.into_iter().take(MAX_LISTED) {
                let Ok(tag_ref) = tag.parse() else { continue };
                let (bytes, digest, _) = match self.pull_manifest(&repo, &ManifestRef::Tag(tag_ref)).await {
                    Ok(manifest) => manifest,
                    // One unreadable tag (deleted, another media type) leaves the rest listed.
                    Err(e) => {
                        tracing::warn!(%repo, %tag, error = %e, "left out of the catalog");
                        continue;
                    }
                };
                if let Some(entry) = crate::api::catalog_entry(&repo, tag, digest, &bytes)
                    && query.is_none_or(|q| entry.matches(q))
                {
                    entries.push(entry);
                }
            }
        }
        Ok(entries)
    }

    /// The registry's repositories (`GET /v2/_catalog`, page by page).
    pub async fn repositories(&self) -> Result<Vec<String>, ClientError> {
        let mut names = Vec::new();
        let mut next = Some(format!("/v2/_catalog?n={MAX_LISTED}"));
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            let response = self.send("the repository list", self.request(Method::GET, &path)).await?;
            next = response
                .headers()
                .get(header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(|link| link.split_once('<')?.1.split_once('>').map(|(target, _)| target.to_owned()))
                .filter(|target| target.starts_with("/v2/_catalog?"));
            let body: serde_json::Value = response.json().await.map_err(|e| ClientError::Protocol(e.to_string()))?;
            let before = names.len();
            let page = body["repositories"].as_array().into_iter().flatten().filter_map(|r| r.as_str());
            names.extend(page.map(str::to_owned));
            if names.len() == before || names.len() >= MAX_LISTED * 10 || pages >= 100 {
                break;
            }
        }
        Ok(names)
    }
}

/// The tag under which registries without the referrers API list
/// `digest`'s referrers (`sha256-<hex>`).
fn fallback_tag(digest: &Digest) -> Result<crate::name::Tag, ClientError> {
    digest.to_string().replace(':', "-").parse().map_err(|e| ClientError::Protocol(format!("fallback tag: {e}")))
}

/// Repositories per page, and tags per repository, a catalog walk reads.
const MAX_LISTED: usize = 1000;
