//! Turning a component into an OCI artifact (CNCF Wasm layout plus
//! toolmesh's annotations), and the signature artifact that refers to it.

use crate::sandbox::{Offer, ToolDescriptor};
use std::collections::BTreeMap;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::oci::{self, ComponentInfo, Descriptor, Manifest, WasmConfig, annotation};
use toolmesh_registry::request::ToolRequest;
use toolmesh_registry::signing::{PAYLOAD_MEDIA_TYPE, SignaturePayload};

/// What is known about a tool besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct ToolMetadata {
    /// The version (also the tag).
    pub version: String,
    /// A one-line description.
    pub description: Option<String>,
    /// Where the source lives.
    pub source: Option<String>,
    /// What the tool asks of the nodes that run it.
    pub permissions: ToolRequest,
    /// The signing key's id, when it is signed.
    pub publisher: Option<String>,
    /// Publication time (RFC 3339).
    pub created: Option<String>,
    /// File name for the component layer, used by OCI clients that save
    /// layers as files (such as `hello.wasm`).
    pub file_name: Option<String>,
    /// The resources, resource templates and prompts the component offers.
    pub offer: Offer,
}

/// A tool artifact ready to push: its blobs and manifest.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The config blob.
    pub config: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
}

impl Artifact {
    /// Builds the artifact for component `bytes`, whose tools are `tools` and
    /// whose imports are `imports`.
    pub fn new(bytes: &[u8], tools: &[ToolDescriptor], imports: &[String], meta: &ToolMetadata) -> Self {
        let mut layer = Descriptor::of(oci::WASM_LAYER_MEDIA_TYPE, bytes);
        if let Some(name) = &meta.file_name {
            layer.annotations.insert(annotation::TITLE.into(), name.clone());
        }
        let config = WasmConfig {
            created: meta.created.clone(),
            author: meta.publisher.clone(),
            architecture: "wasm".into(),
            os: "wasip2".into(),
            layer_digests: vec![layer.digest],
            component: Some(ComponentInfo {
                exports: vec!["toolmesh:tool/handler@0.1.0".into()],
                imports: imports.to_vec(),
            }),
        };
        let config = serde_json::to_vec(&config).expect("config serialises");
        let mut annotations = BTreeMap::new();
        annotations.insert(annotation::TOOLS.into(), serde_json::to_string(tools).expect("tools serialise"));
        if !meta.offer.is_empty() {
            annotations.insert(annotation::OFFER.into(), serde_json::to_string(&meta.offer).expect("offer serialises"));
        }
        annotations.insert(annotation::PERMISSIONS.into(), meta.permissions.to_annotation());
        annotations.insert(annotation::VERSION.into(), meta.version.clone());
        let optional = [
            (annotation::DESCRIPTION, &meta.description),
            (annotation::SOURCE, &meta.source),
            (annotation::PUBLISHER, &meta.publisher),
            (annotation::CREATED, &meta.created),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                annotations.insert(key.into(), value.clone());
            }
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(oci::MANIFEST_MEDIA_TYPE.into()),
            artifact_type: None,
            config: Descriptor::of(oci::WASM_CONFIG_MEDIA_TYPE, &config),
            layers: vec![layer],
            subject: None,
            annotations,
        };
        Artifact { config, manifest }
    }
}

/// The signature artifact for `payload`, referring to the manifest
/// `subject` (of `subject_size` bytes). Returns its payload blob and manifest.
pub fn signature_artifact(payload: &SignaturePayload, subject: Digest, subject_size: u64) -> (Vec<u8>, Manifest) {
    let blob = serde_json::to_vec(payload).expect("payload serialises");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: Some(oci::SIGNATURE_ARTIFACT_TYPE.into()),
        config: Descriptor::of(oci::EMPTY_MEDIA_TYPE, b"{}"),
        layers: vec![Descriptor::of(PAYLOAD_MEDIA_TYPE, &blob)],
        subject: Some(Descriptor {
            media_type: oci::MANIFEST_MEDIA_TYPE.into(),
            digest: subject,
            size: subject_size,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }),
        annotations: BTreeMap::from([(annotation::PUBLISHER.into(), payload.key_id.clone())]),
    };
    (blob, manifest)
}
