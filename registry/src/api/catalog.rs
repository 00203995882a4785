//! `GET /toolmesh/v1/catalog?q=`: every tagged tool with the metadata from
//! its manifest annotations; nothing is downloaded or run to build it.

use super::{Access, ApiError, AppState};
use crate::digest::Digest;
use crate::name::{Repository, version_order};
use crate::oci::{self, annotation};
use crate::request::ToolRequest;
use crate::store::{FsStore, StoreError};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One published version of a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The repository, such as `toolmesh/text`.
    pub name: String,
    /// The tag.
    pub version: String,
    /// The manifest digest: pin calls to it.
    pub digest: String,
    /// One-line description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Key id of the publisher who signed it, if signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    /// Where its source lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The tool descriptors.
    #[serde(default)]
    pub tools: Value,
    /// What it asks of the nodes that run it.
    #[serde(default)]
    pub permissions: ToolRequest,
    /// The resources, resource templates and prompts it offers (JSON
    /// object), or null.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub offer: Value,
}

impl CatalogEntry {
    /// Whether `query` appears (ignoring case) in its name, description or tools.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.to_lowercase();
        let hit = |s: &str| s.to_lowercase().contains(&q);
        hit(&self.name) || self.description.as_deref().is_some_and(hit) || hit(&self.tools.to_string())
    }
}

/// Every tagged Wasm tool in `store` whose name, description or tools match `query`.
pub async fn catalog_entries(store: &FsStore, query: Option<&str>) -> Result<Vec<CatalogEntry>, StoreError> {
    let mut out = Vec::new();
    for repo in store.repositories().await? {
        for tag in store.tags(&repo).await? {
            let Ok(tag_ref) = tag.parse() else { continue };
            // A yanked version stays pullable, but is no longer offered.
            if store.is_yanked(&repo, &tag_ref).await? {
                continue;
            }
            let reference = crate::name::ManifestRef::Tag(tag_ref);
            let (bytes, digest, _) = store.get_manifest(&repo, &reference).await?;
            if let Some(entry) = entry(&repo, tag, digest, &bytes)
                && query.is_none_or(|q| entry.matches(q))
            {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// The newest version of each package among `entries` (any order), by name.
pub fn newest_versions(entries: Vec<CatalogEntry>) -> Vec<CatalogEntry> {
    let mut newest: std::collections::BTreeMap<String, CatalogEntry> = std::collections::BTreeMap::new();
    for entry in entries {
        let newer = newest
            .get(&entry.name)
            .is_none_or(|current| version_order(&entry.version) > version_order(&current.version));
        if newer {
            newest.insert(entry.name.clone(), entry);
        }
    }
    newest.into_values().collect()
}

/// The catalog entry of manifest `bytes` (tag `tag` of `repo`), if it is
/// a Wasm tool whose request this version can read.
pub fn entry(repo: &Repository, tag: String, digest: Digest, bytes: &[u8]) -> Option<CatalogEntry> {
    let manifest = serde_json::from_slice::<oci::Manifest>(bytes).ok()?;
    manifest.wasm_layer()?;
    let a = &manifest.annotations;
    let permissions = match ToolRequest::from_annotation(a.get(annotation::PERMISSIONS).map(String::as_str)) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(%repo, %tag, "left out of the catalog: {e}");
            return None;
        }
    };
    let json = |key: &str| a.get(key).and_then(|v| serde_json::from_str(v).ok()).unwrap_or(Value::Null);
    Some(CatalogEntry {
        name: repo.to_string(),
        version: tag,
        digest: digest.to_string(),
        description: a.get(annotation::DESCRIPTION).cloned(),
        publisher: a.get(annotation::PUBLISHER).cloned(),
        source: a.get(annotation::SOURCE).cloned(),
        tools: json(annotation::TOOLS),
        permissions,
        offer: json(annotation::OFFER),
    })
}

pub(crate) async fn handler(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<axum::Json<Value>, ApiError> {
    state.authorize(&headers, Access::Pull)?;
    let entries = catalog_entries(&state.store, params.get("q").map(String::as_str)).await?;
    Ok(axum::Json(serde_json::json!({ "tools": entries })))
}
