//! The registry end to end: `tool registry serve` as a real process,
//! `tool publish`, `pull`, `run` by reference, `keygen`, `verify`, `search`,
//! and a registry killed in the middle of an upload.

use serde_json::json;
use std::io::Write;
use toolmesh_e2e::{Server, component, registry_server, tool};

const TOKEN: &str = "e2e-push-token";

fn registry(dir: &std::path::Path) -> Server {
    registry_server(dir, TOKEN)
}

fn with_registry<'a>(url: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = args.to_vec();
    argv.extend_from_slice(&["--registry", url, "--token", TOKEN]);
    argv
}

#[test]
fn publish_pull_run_verify_and_search() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = registry(data.path());
    let url = server.url.as_str();

    let key = work.path().join("me.key");
    let other = work.path().join("other.key");
    for k in [&key, &other] {
        let run = tool(&["keygen", "--output", k.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let key_pub = format!("{}.pub", key.display());
    let other_pub = format!("{}.pub", other.display());

    let mut published = Vec::new();
    for name in ["hello", "text", "markdown", "image"] {
        let file = component(name).display().to_string();
        let repo = format!("examples/{name}");
        let args = ["publish", &file, "--name", &repo, "--version", "1.0.0", "--key", key.to_str().unwrap()];
        let run = tool(&with_registry(url, &args));
        assert_eq!(run.code, 0, "{}", run.stderr);
        let line = run.stdout.trim().to_owned();
        assert!(line.starts_with(&format!("{repo}:1.0.0@sha256:")), "{line}");
        published.push((name, line));
    }

    for (name, line) in &published {
        let digest_ref = line.replace(":1.0.0@", "@");
        for reference in [format!("examples/{name}:1.0.0"), digest_ref.clone()] {
            let out = work.path().join(format!("{name}.wasm"));
            let args = ["pull", reference.as_str(), "-o", out.to_str().unwrap(), "--trust", key_pub.as_str()];
            let run = tool(&with_registry(url, &args));
            assert_eq!(run.code, 0, "{reference}: {}", run.stderr);
            assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(component(name)).unwrap(), "{reference}");
        }
    }

    let run = tool(&with_registry(url, &["run", "examples/hello:1.0.0", "greet", "--args", r#"{"name":"registry"}"#]));
    assert_eq!((run.code, run.stdout.as_str()), (0, "Hello, registry!\n"), "{}", run.stderr);
    let run = tool(&with_registry(
        url,
        &["run", "examples/text:1.0.0", "slugify", "--args", r#"{"text":"From The Registry"}"#, "--trust", &key_pub],
    ));
    assert_eq!(run.stdout, "from-the-registry\n", "{}", run.stderr);

    let run = tool(&with_registry(url, &["verify", "examples/markdown:1.0.0", "--trust", &key_pub]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("is signed by key"), "{}", run.stdout);
    let run = tool(&with_registry(url, &["verify", "examples/markdown:1.0.0", "--trust", &other_pub]));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("no trusted signature"), "{}", run.stderr);
    let run = tool(&with_registry(
        url,
        &["run", "examples/hello:1.0.0", "greet", "--args", "{\"name\":\"x\"}", "--trust", &other_pub],
    ));
    assert_eq!(run.code, 1, "{}", run.stdout);

    // Unsigned tools are refused when a signature is required.
    let hello = component("hello").display().to_string();
    let run =
        tool(&with_registry(url, &["publish", &hello, "--name", "loose/unsigned", "--version", "0.1", "--unsigned"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = tool(&with_registry(url, &["pull", "loose/unsigned:0.1", "-o", "/dev/null", "--trust", &key_pub]));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("is not signed"), "{}", run.stderr);

    let run = tool(&with_registry(url, &["search", "slug", "--json"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let found = run.json();
    let names: Vec<&str> = found.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["examples/text"]);
    assert_eq!(found[0]["version"], "1.0.0");
    assert_eq!(found[0]["tools"][3]["name"], "slugify");
    assert_eq!(found[0]["publisher"].as_str().unwrap().len(), 16);
    let run = tool(&with_registry(url, &["search"]));
    for name in ["examples/hello:1.0.0", "examples/image:1.0.0", "loose/unsigned:0.1"] {
        assert!(run.stdout.contains(name), "{name} missing from:\n{}", run.stdout);
    }
}

#[test]
fn publish_reads_tool_toml_and_refuses_bad_input() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let server = registry(data.path());
    let url = server.url.as_str();
    let file = work.path().join("text.wasm");
    std::fs::copy(component("text"), &file).unwrap();
    std::fs::write(
        work.path().join("tool.toml"),
        "description = \"Text utilities\"\nsource = \"https://example.com/text\"\n[permissions]\nnetwork = [\"api.example.com\"]\nmemory = \"64MiB\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let run = tool(&with_registry(url, &["publish", f, "--name", "acme/text", "--version", "2.0"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = tool(&with_registry(url, &["search", "--json"]));
    let entry = &run.json()[0];
    assert_eq!(entry["description"], "Text utilities");
    assert_eq!(entry["source"], "https://example.com/text");
    // Published as the typed, versioned request.
    assert_eq!(
        entry["permissions"],
        json!({"format": 1, "memory_bytes": 64 << 20,
               "network": [{"scheme": "https", "host": "api.example.com", "methods": ["GET"]}]})
    );

    for (args, needle) in [
        (vec!["--name", "Acme/Text", "--version", "1"], "invalid repository name"),
        (vec!["--name", "acme/../x", "--version", "1"], "invalid repository name"),
        (vec!["--name", "acme/text", "--version", ".."], "invalid tag"),
        (vec!["--name", "acme/text", "--version", "1", "--network", "http://evil/path"], "not a URL with a path"),
        (vec!["--name", "acme/text", "--version", "1", "--network", "ftp://evil"], "not http or https"),
    ] {
        let mut argv = vec!["publish", f];
        argv.extend(args);
        let run = tool(&with_registry(url, &argv));
        assert_eq!(run.code, 2, "{argv:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{argv:?}: {}", run.stderr);
    }
    // A version is immutable: publishing it again is fine, other content under it is refused.
    let run = tool(&with_registry(url, &["publish", f, "--name", "acme/text", "--version", "2.0"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let hello = component("hello").display().to_string();
    let run = tool(&with_registry(url, &["publish", &hello, "--name", "acme/text", "--version", "2.0"]));
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("version 2.0 of acme/text is already published"), "{}", run.stderr);
    let kept = work.path().join("kept.wasm");
    let run = tool(&with_registry(url, &["pull", "acme/text:2.0", "-o", kept.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        std::fs::read(&file).unwrap(),
        "the version still holds what was published"
    );
    // Yanked: out of search, still pullable by its pin; restored with --undo.
    let run = tool(&with_registry(url, &["yank", "acme/text:2.0"]));
    assert_eq!(
        (run.code, run.stdout.trim()),
        (0, "acme/text:2.0 yanked: left out of the catalog, still pullable"),
        "{}",
        run.stderr
    );
    let run = tool(&with_registry(url, &["search", "--json"]));
    assert_eq!(run.json(), json!([]));
    let run = tool(&with_registry(url, &["pull", "acme/text:2.0", "-o", kept.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = tool(&with_registry(url, &["yank", "acme/text:2.0", "--undo"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = tool(&with_registry(url, &["search", "--json"]));
    assert_eq!(run.json()[0]["version"], "2.0");
    let run = tool(&with_registry(url, &["yank", "acme/text"]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("name the version to yank"), "{}", run.stderr);
    // Name and version from tool.toml: `tool publish FILE` needs nothing else.
    let bare = work.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let hello = bare.join("hello.wasm");
    std::fs::copy(component("hello"), &hello).unwrap();
    let h = hello.to_str().unwrap();
    std::fs::write(bare.join("tool.toml"), "name = \"acme/hello\"\n").unwrap();
    let run = tool(&with_registry(url, &["publish", h]));
    assert!(run.code == 0 && run.stdout.starts_with("acme/hello:0.1.0@"), "{}", run.stderr);
    assert!(run.stderr.contains("no version given (--version, `version` in tool.toml"), "{}", run.stderr);
    std::fs::write(bare.join("tool.toml"), "name = \"acme/hello\"\nversion = \"3.1.0\"\n").unwrap();
    let run = tool(&with_registry(url, &["publish", h]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("acme/hello:3.1.0@sha256:"), "{}", run.stdout);
    // A flag still wins over the file.
    let run = tool(&with_registry(url, &["publish", h, "--version", "3.2.0"]));
    assert!(run.stdout.starts_with("acme/hello:3.2.0@sha256:"), "{}", run.stderr);
    // A wrong token is refused with the registry's reason.
    let run = tool(&["publish", f, "--name", "acme/text", "--version", "3", "--registry", url, "--token", "wrong"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("UNAUTHORIZED"), "{}", run.stderr);
    // Unknown tags and repositories.
    let run = tool(&["pull", "acme/text:9.9", "--registry", url]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("MANIFEST_UNKNOWN"), "{}", run.stderr);
    // A registry that is not there.
    let run = tool(&["pull", "acme/text:2.0", "--registry", "http://127.0.0.1:9"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("cannot reach the registry"), "{}", run.stderr);
}

#[test]
fn a_registry_killed_mid_upload_leaves_no_partial_blob_and_a_retry_succeeds() {
    let data = tempfile::tempdir().unwrap();
    let server = registry(data.path());
    let address = server.url.trim_start_matches("http://").to_owned();
    let component_bytes = std::fs::read(component("image")).unwrap();

    // Start an upload and send half of a chunk, then kill the registry.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let post = format!(
        "POST /v2/crash/test/blobs/uploads/ HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(post.as_bytes()).unwrap();
    let mut response = [0u8; 1024];
    let n = std::io::Read::read(&mut stream, &mut response).unwrap();
    let text = String::from_utf8_lossy(&response[..n]).to_string();
    let location = text
        .lines()
        .find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")))
        .unwrap_or_else(|| panic!("no Location in {text}"))
        .trim()
        .to_owned();
    let patch = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\nContent-Range: 0-{}\r\nContent-Length: {}\r\n\r\n",
        component_bytes.len() - 1,
        component_bytes.len()
    );
    stream.write_all(patch.as_bytes()).unwrap();
    stream.write_all(&component_bytes[..component_bytes.len() / 2]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.kill();

    let blobs = data.path().join("blobs/sha256");
    let visible = walk(&blobs);
    assert!(visible.is_empty(), "partial blob visible after the crash: {visible:?}");

    // Restart on the same directory: the blob is unknown, a retry succeeds.
    let server = registry(data.path());
    let url = server.url.as_str();
    let file = component("image").display().to_string();
    let run = tool(&with_registry(url, &["publish", &file, "--name", "crash/test", "--version", "1"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = data.path().join("pulled.wasm");
    let run = tool(&with_registry(url, &["pull", "crash/test:1", "-o", out.to_str().unwrap()]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(out).unwrap(), component_bytes);
    assert!(walk(&data.path().join("tmp")).is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&entry.path()));
        } else {
            out.push(entry.path());
        }
    }
    out
}
