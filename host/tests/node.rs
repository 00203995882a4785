//! A node whose components come from a registry over HTTP (the registry
//! API served on loopback), as a node on another machine would use it: it
//! fetches by digest, checks the publisher and the request against its
//! policy, and runs the call.
//!
//! The components are built by `scripts/build-components.sh`.

use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use toolmesh_host::artifact::ToolMetadata;
use toolmesh_host::config::SandboxConfig;
use toolmesh_host::grant::{PermissionsToml, Policy};
use toolmesh_host::node::{Invocation, Node};
use toolmesh_host::sandbox::{Content, Sandbox, SandboxError};
use toolmesh_registry::api::AccessConfig;
use toolmesh_registry::client::Client;
use toolmesh_registry::digest::Digest;
use toolmesh_registry::name::Repository;
use toolmesh_registry::signing::SecretKey;
use toolmesh_registry::store::{FsStore, StoreConfig};

fn component(name: &str) -> Bytes {
    let exe = std::env::current_exe().expect("test binary path");
    let path: PathBuf =
        exe.ancestors().nth(3).expect("target directory").join(format!("wasm32-wasip2/release/{name}.wasm"));
    Bytes::from(
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-components.sh", path.display())),
    )
}

/// A registry on loopback over a fresh store; returns a client with push rights.
async fn registry(dir: &std::path::Path) -> Client {
    let store = FsStore::open(dir, StoreConfig::default()).unwrap();
    let access = AccessConfig { push_tokens: vec!["t".into()], ..AccessConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, toolmesh_registry::api::router(store, access)).await });
    Client::new(&url, Some("t".into())).unwrap()
}

async fn publish(
    sandbox: &Sandbox,
    client: &Client,
    name: &str,
    wasm: &str,
    toml: &str,
    key: Option<&SecretKey>,
) -> (Repository, Digest) {
    let permissions: PermissionsToml = toml::from_str(toml).unwrap();
    let meta = ToolMetadata { permissions: permissions.to_request().unwrap(), ..ToolMetadata::default() };
    let repo: Repository = name.parse().unwrap();
    let digest = toolmesh_host::publish::publish(
        sandbox,
        client,
        component(wasm),
        (&repo, &"1.0".parse().unwrap()),
        meta,
        key,
        &|_| {},
    )
    .await
    .unwrap();
    (repo, digest)
}

fn call(repository: &Repository, digest: Digest, tool: &str, arguments: &str) -> Invocation {
    Invocation {
        repository: repository.clone(),
        digest,
        tool: tool.into(),
        arguments: arguments.into(),
        progress: None,
        call_id: "t1".into(),
        request: Arc::default(),
        retry_safe: false,
        effects: Arc::default(),
        caller: Some("tester".into()),
        meter: Arc::default(),
        tools: None,
        session: None,
        ask: None,
        updates: None,
        bridge: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_what_it_fetches_from_a_registry_under_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let client = registry(dir.path()).await;
    let sandbox = Arc::new(Sandbox::new(SandboxConfig::default()).unwrap());
    let key = SecretKey::generate();
    let (hello, hello_digest) = publish(&sandbox, &client, "acme/hello", "hello", "", Some(&key)).await;
    let (fetch, fetch_digest) =
        publish(&sandbox, &client, "loose/fetch", "fetch", "network = [\"https://api.example.com\"]", None).await;

    // Any OCI registry is a source: the node pulls by digest and runs.
    let node = Node::new(sandbox.clone(), Arc::new(client.clone()), Arc::new(Policy::builtin()));
    let greet = call(&hello, hello_digest, "greet", r#"{"name": "node"}"#);
    let meter = greet.meter.clone();
    let out = node.run(greet).await.unwrap();
    assert_eq!(out.into_content(), vec![Content::Text("Hello, node!".into())]);
    // The call's CPU time was measured (instantiating and running it takes some).
    assert!(
        meter.cpu() > std::time::Duration::ZERO && meter.cpu() < std::time::Duration::from_secs(5),
        "{:?}",
        meter.cpu()
    );
    assert_eq!(meter.gpu(), std::time::Duration::ZERO);
    // What the tool requests is read from the fetched manifest and checked.
    let err =
        node.run(call(&fetch, fetch_digest, "fetch", r#"{"url": "https://api.example.com/"}"#)).await.unwrap_err();
    assert!(matches!(err.sandbox(), Some(SandboxError::NotCovered { .. })), "{err}");
    assert!(err.to_string().contains("network GET https://api.example.com"), "{err}");
    // A digest the registry does not hold is a fetch error, not a panic.
    let err = node.run(call(&hello, Digest::of(b"nothing"), "greet", "{}")).await.unwrap_err();
    assert_eq!(err.kind(), "fetch_failed", "{err}");

    // Publisher trust through the registry's referrers.
    let trusting = |trusted: &SecretKey| {
        let text = format!("[publishers]\ntrusted = [\"{}\"]\n", trusted.public().to_text());
        Arc::new(Policy::from_toml(&text, &|_| None).unwrap())
    };
    let node = Node::new(sandbox.clone(), Arc::new(client.clone()), trusting(&key));
    assert!(node.run(call(&hello, hello_digest, "greet", r#"{"name": "signed"}"#)).await.is_ok());
    let node = Node::new(sandbox, Arc::new(client), trusting(&SecretKey::generate()));
    let err = node.run(call(&hello, hello_digest, "greet", r#"{"name": "signed"}"#)).await.unwrap_err();
    assert!(err.to_string().contains("no signature this node's policy trusts"), "{err}");
}
