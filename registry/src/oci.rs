//! OCI manifests and media types, and where toolmesh keeps its metadata.
//!
//! A tool is published in the CNCF Wasm OCI artifact layout: an image
//! manifest whose config is `application/vnd.wasm.config.v0+json` and whose
//! one layer is the component (`application/wasm`). toolmesh's own metadata
//! (tool descriptors, requested permissions, publisher) rides in manifest
//! annotations, so a catalog can be built from manifests alone, without
//! downloading or running any component.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (the referrers API answers with one).
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's manifest list and manifest, accepted for interoperability.
pub const DOCKER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Config of a Wasm component artifact.
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// A Wasm component layer.
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/wasm";
/// The empty config of artifacts that need none.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Artifact type of a toolmesh signature (a referrer of the signed manifest).
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.toolmesh.signature.v1+json";

/// Annotation keys.
pub mod annotation {
    /// The tool descriptors (JSON array) of the component.
    pub const TOOLS: &str = "dev.toolmesh.tools";
    /// The resources, resource templates and prompts the component offers
    /// (JSON object: `resources`, `templates`, `prompts`).
    pub const OFFER: &str = "dev.toolmesh.offer";
    /// The permissions the tool requests (JSON object).
    pub const PERMISSIONS: &str = "dev.toolmesh.permissions";
    /// The key id of the publisher that signed it.
    pub const PUBLISHER: &str = "dev.toolmesh.publisher";
    /// Version (the tag it was published under).
    pub const VERSION: &str = "org.opencontainers.image.version";
    /// A one-line description.
    pub const DESCRIPTION: &str = "org.opencontainers.image.description";
    /// Where the source code lives.
    pub const SOURCE: &str = "org.opencontainers.image.source";
    /// When it was published (RFC 3339).
    pub const CREATED: &str = "org.opencontainers.image.created";
    /// Human-readable title.
    pub const TITLE: &str = "org.opencontainers.image.title";
}

/// A reference to a blob: its media type, digest and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type (in referrers listings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of `bytes` with `media_type`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: Digest::of(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An OCI image manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact's type, when it is not an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures name what they sign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Manifest {
    /// The type a referrers listing shows for this manifest.
    pub fn effective_artifact_type(&self) -> String {
        self.artifact_type.clone().unwrap_or_else(|| self.config.media_type.clone())
    }

    /// The component layer of a Wasm artifact, if this is one.
    pub fn wasm_layer(&self) -> Option<&Descriptor> {
        (self.config.media_type == WASM_CONFIG_MEDIA_TYPE)
            .then(|| self.layers.iter().find(|l| l.media_type == WASM_LAYER_MEDIA_TYPE))
            .flatten()
    }

    /// Parses manifest `bytes` and returns the component layer they point
    /// to, with a message that says why when they are not a Wasm component
    /// artifact.
    pub fn component_layer(bytes: &[u8]) -> Result<Descriptor, String> {
        Manifest::parse(bytes)?.component().cloned()
    }

    /// Parses manifest `bytes`, saying why when they are not one.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not an OCI image manifest: {e}"))
    }

    /// The component layer, with a message that says why when this is not
    /// a Wasm component artifact.
    pub fn component(&self) -> Result<&Descriptor, String> {
        self.wasm_layer().ok_or_else(|| {
            format!(
                "not a Wasm component artifact (config {}, no {WASM_LAYER_MEDIA_TYPE} layer)",
                self.config.media_type
            )
        })
    }

    /// Serialises the manifest; its digest is the digest of these bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifests always serialise")
    }
}

/// The config blob of a Wasm component artifact (CNCF layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmConfig {
    /// When it was built or published (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Always `wasm`.
    pub architecture: String,
    /// `wasip2` for components.
    pub os: String,
    /// Digests of the layers.
    pub layer_digests: Vec<Digest>,
    /// What the component imports and exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentInfo>,
}

/// Imports and exports of a component, for the config blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentInfo {
    /// Exported interfaces.
    pub exports: Vec<String>,
    /// Imported interfaces.
    pub imports: Vec<String>,
}

/// Checks that `bytes` is a manifest or index this registry can store and
/// returns the parts that matter: its media type, the blobs it references
/// and its subject.
pub fn inspect_manifest(bytes: &[u8], content_type: Option<&str>) -> Result<ManifestSummary, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("schemaVersion").and_then(serde_json::Value::as_u64) != Some(2) {
        return Err("schemaVersion must be 2".into());
    }
    let declared = value.get("mediaType").and_then(serde_json::Value::as_str);
    let media_type = match (declared, content_type) {
        (Some(d), Some(c)) if d != c => {
            return Err(format!("mediaType {d:?} does not match Content-Type {c:?}"));
        }
        (Some(d), _) => d.to_owned(),
        (None, Some(c)) => c.to_owned(),
        (None, None) => MANIFEST_MEDIA_TYPE.to_owned(),
    };
    let known = media_type == MANIFEST_MEDIA_TYPE
        || media_type == INDEX_MEDIA_TYPE
        || DOCKER_MEDIA_TYPES.contains(&media_type.as_str());
    if !known {
        return Err(format!("unsupported manifest media type {media_type:?}"));
    }
    let descriptors = |key: &str| -> Result<Vec<Descriptor>, String> {
        match value.get(key) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("bad `{key}`: {e}")),
        }
    };
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    if media_type == INDEX_MEDIA_TYPE || media_type == DOCKER_MEDIA_TYPES[1] {
        manifests = descriptors("manifests")?.into_iter().map(|d| d.digest).collect();
    } else {
        let config: Descriptor = serde_json::from_value(value.get("config").cloned().ok_or("missing `config`")?)
            .map_err(|e| format!("bad `config`: {e}"))?;
        blobs.push(config.digest);
        blobs.extend(descriptors("layers")?.into_iter().map(|d| d.digest));
    }
    let subject = match value.get("subject") {
        None => None,
        Some(v) => Some(serde_json::from_value::<Descriptor>(v.clone()).map_err(|e| format!("bad `subject`: {e}"))?),
    };
    Ok(ManifestSummary { media_type, blobs, manifests, subject: subject.map(|s| s.digest) })
}

/// What [`inspect_manifest`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestSummary {
    /// The manifest's media type.
    pub media_type: String,
    /// Blobs it references (config and layers), which must exist.
    pub blobs: Vec<Digest>,
    /// Manifests it references (an index), which must exist.
    pub manifests: Vec<Digest>,
    /// The manifest it refers to, if any.
    pub subject: Option<Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wasm_manifest() -> Manifest {
        let config = Descriptor::of(WASM_CONFIG_MEDIA_TYPE, b"{}");
        let layer = Descriptor::of(WASM_LAYER_MEDIA_TYPE, b"\0asm");
        Manifest {
            schema_version: 2,
            media_type: Some(MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config,
            layers: vec![layer],
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn finds_the_wasm_layer_and_referenced_blobs() {
        let m = wasm_manifest();
        assert_eq!(m.wasm_layer().unwrap().digest, Digest::of(b"\0asm"));
        assert_eq!(Manifest::component_layer(&m.to_bytes()).unwrap().digest, Digest::of(b"\0asm"));
        assert!(Manifest::component_layer(b"[]").unwrap_err().contains("not an OCI image manifest"));
        let summary = inspect_manifest(&m.to_bytes(), Some(MANIFEST_MEDIA_TYPE)).unwrap();
        assert_eq!(summary.blobs, vec![Digest::of(b"{}"), Digest::of(b"\0asm")]);
        assert_eq!(summary.subject, None);
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(inspect_manifest(b"nope", None).is_err());
        assert!(inspect_manifest(br#"{"schemaVersion": 1}"#, None).is_err());
        let m = wasm_manifest().to_bytes();
        assert!(inspect_manifest(&m, Some(INDEX_MEDIA_TYPE)).unwrap_err().contains("does not match"));
        let bad_digest = String::from_utf8(m).unwrap().replace("sha256:", "sha256:zz");
        assert!(inspect_manifest(bad_digest.as_bytes(), None).is_err());
    }
}
