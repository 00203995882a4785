//! Directories and configuration for components of another world: the
//! `plain` fixture's `files` interface reads, writes and lists through
//! what a policy lends, and reads `wasi:config/store`.

mod common;

use common::*;
use serde_json::{Value, json};
use toolmesh_host::sandbox::{Content, SandboxError};

/// A policy lending `data` read-only at `/data` and `out` read-write at
/// `/out`, with one configuration value.
fn lending_policy(data: &std::path::Path, out: &std::path::Path) -> toolmesh_host::grant::Policy {
    let text = format!(
        "[files]\nlend = [{{ host = {data:?}, guest = \"/data\" }}, {{ host = {out:?}, guest = \"/out\", write = true }}]\n\
         [config]\nregion = \"eu-west\"\n"
    );
    toolmesh_host::grant::Policy::from_toml(&text, &|_| None).unwrap()
}

fn request(toml_text: &str) -> toolmesh_host::grant::ToolRequest {
    let permissions: toolmesh_host::grant::PermissionsToml = toml::from_str(toml_text).unwrap();
    permissions.to_request().unwrap()
}

#[tokio::test]
async fn lent_directories_hold_against_escapes_and_writes() {
    let root = tempfile::tempdir().unwrap();
    let (data, out) = (root.path().join("data"), root.path().join("out"));
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(data.join("a.txt"), "lent").unwrap();
    std::fs::write(data.join("sub/b.txt"), "below").unwrap();
    std::fs::write(root.path().join("secret.txt"), "not lent").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), data.join("link")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", data.join("relative-link")).unwrap();
    let policy = lending_policy(&data, &out);

    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    let asks = request(
        "files = [\"/data\", { path = \"/out\", write = true }]\nconfig = { greeting = \"hi\", region = \"mine\" }",
    );
    let grant = std::sync::Arc::new(policy.grant(&asks).unwrap());
    let run = |tool: &'static str, args: Value| {
        let options = toolmesh_host::sandbox::CallOptions { grant: Some(grant.clone()), ..Default::default() };
        let (sandbox, plain) = (&sandbox, &plain);
        async move { sandbox.call(plain, tool, &args.to_string(), options).await.map(|o| o.into_content()) }
    };
    let failed = |result: Result<Vec<Content>, SandboxError>| match result {
        Err(SandboxError::ToolFailed(message)) => message,
        other => panic!("expected a failure, got {other:?}"),
    };
    assert_eq!(text(&run("files.read", json!({"path": "/data/a.txt"})).await.unwrap()), "lent");
    assert_eq!(text(&run("files.read", json!({"path": "/data/sub/b.txt"})).await.unwrap()), "below");
    let names = run("files.list_dir", json!({"path": "/data"})).await.unwrap();
    assert_eq!(structured(&names), &json!(["a.txt", "link", "relative-link", "sub"]));
    // Out of the lent directory, by `..` or by links: refused by WASI.
    for path in ["/data/../secret.txt", "/data/link", "/data/relative-link", "/data/sub/../../secret.txt"] {
        let message = failed(run("files.read", json!({"path": path})).await);
        assert!(!message.contains("not lent"), "{path}: {message}");
    }
    // Nothing else of the host is there.
    failed(run("files.read", json!({"path": "/etc/passwd"})).await);
    failed(run("files.list_dir", json!({"path": "/"})).await);
    // Read-only means read-only; the read-write one is written.
    failed(run("files.write", json!({"path": "/data/new.txt", "text": "x"})).await);
    assert!(!data.join("new.txt").exists());
    run("files.write", json!({"path": "/out/new.txt", "text": "written"})).await.unwrap();
    assert_eq!(std::fs::read_to_string(out.join("new.txt")).unwrap(), "written");
    // Configuration: the tool's own values, the policy's over them.
    let config = |key: &'static str| run("files.config", json!({"key": key}));
    assert_eq!(structured(&config("greeting").await.unwrap()), &json!("hi"));
    assert_eq!(structured(&config("region").await.unwrap()), &json!("eu-west"));
    assert_eq!(structured(&config("absent").await.unwrap()), &Value::Null);

    // A directory inside a lent one is preopened alone, at its own path.
    let grant = std::sync::Arc::new(policy.grant(&request("files = [\"/data/sub\"]")).unwrap());
    let options = toolmesh_host::sandbox::CallOptions { grant: Some(grant), ..Default::default() };
    let inner = sandbox.call(&plain, "files.read", r#"{"path": "/data/sub/b.txt"}"#, options.clone()).await;
    assert_eq!(text(&inner.unwrap().into_content()), "below");
    let outer = sandbox.call(&plain, "files.read", r#"{"path": "/data/a.txt"}"#, options).await;
    assert!(matches!(outer, Err(SandboxError::ToolFailed(_))), "{outer:?}");

    // What the policy does not lend, or lends only to read, is not granted.
    for (asks, missing) in [
        ("files = [\"/home\"]", "directory /home (read-only)"),
        ("files = [{ path = \"/data\", write = true }]", "directory /data (read-write)"),
        ("files = [\"/database\"]", "directory /database (read-only)"),
    ] {
        let err = policy.grant(&request(asks)).unwrap_err().to_string();
        assert!(err.contains(missing), "{asks}: {err}");
    }
    // Without a grant, no directory and no configuration.
    let bare = call(&sandbox, &plain, "files.read", json!({"path": "/data/a.txt"})).await;
    failed(bare);
    assert_eq!(
        structured(&call(&sandbox, &plain, "files.config", json!({"key": "region"})).await.unwrap()),
        &Value::Null
    );
}
