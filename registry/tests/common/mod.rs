//! What the registry's API tests share: a registry on a loopback
//! listener, its clients, and manifests to push.
#![allow(dead_code)] // each test file uses its own part

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::Value;
use std::collections::BTreeMap;
use toolmesh_registry::api::{AccessConfig, router};
use toolmesh_registry::client::Client;
use toolmesh_registry::name::Repository;
use toolmesh_registry::oci::{self, Descriptor, Manifest};
use toolmesh_registry::store::{FsStore, StoreConfig};

pub const PUSH: &str = "push-secret";

pub struct Registry {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub async fn start(config: StoreConfig, access: AccessConfig) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path(), config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router(store, access)).await });
    Registry { url, dir, http: toolmesh_registry::client::http_builder().build().unwrap() }
}

pub async fn default_registry() -> Registry {
    start(StoreConfig::default(), AccessConfig { push_tokens: vec![PUSH.into()], ..AccessConfig::default() }).await
}

impl Registry {
    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(PUSH.into())).unwrap()
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url)).bearer_auth(PUSH)
    }

    /// Every file under blobs/, as (digest hex, bytes).
    pub fn stored_blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(self.dir.path().join("blobs/sha256")).unwrap() {
            for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                out.push((path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap()));
            }
        }
        out
    }
}

pub fn repo(name: &str) -> Repository {
    name.parse().unwrap()
}

pub async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    (status, body["errors"][0]["code"].as_str().unwrap_or("").to_owned())
}

pub fn wasm_manifest(layer: &[u8], config: &[u8]) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(oci::MANIFEST_MEDIA_TYPE.into()),
        artifact_type: None,
        config: Descriptor::of(oci::WASM_CONFIG_MEDIA_TYPE, config),
        layers: vec![Descriptor::of(oci::WASM_LAYER_MEDIA_TYPE, layer)],
        subject: None,
        annotations: BTreeMap::new(),
    }
}

/// Pushes a config and one layer per item of `layers` into `repo`; returns
/// the (not yet pushed) manifest of a Wasm tool for each layer.
pub async fn pushed_blobs_of(c: &Client, repo: &Repository, layers: &[&[u8]]) -> Vec<Vec<u8>> {
    let config = Bytes::from_static(b"{\"architecture\":\"wasm\"}");
    c.push_blob(repo, config.clone(), &|_| {}).await.unwrap();
    let mut manifests = Vec::new();
    for layer in layers {
        c.push_blob(repo, Bytes::copy_from_slice(layer), &|_| {}).await.unwrap();
        manifests.push(wasm_manifest(layer, &config).to_bytes());
    }
    manifests
}
