//! Publishing as a user does: `tool publish FILE.wasm` with nothing else
//! (name, version and description from the component's own metadata, or
//! defaults; the publisher key made on first use), `tool login`, and a
//! second publisher trying to take over the first one's namespace.

use std::path::{Path, PathBuf};
use toolmesh_e2e::{Server, component, registry_server, tool_as, tool_with_input};

const TOKEN: &str = "e2e-push-token";

fn registry(dir: &std::path::Path) -> Server {
    registry_server(dir, TOKEN)
}

fn leb(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A custom section, as `wasm-tools metadata add` appends them.
fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = leb(name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = vec![0];
    out.extend(leb(body.len()));
    out.extend(body);
    out
}

/// `hello.wasm` with the standard metadata sections: a name, version and description.
fn with_metadata(dir: &Path, file: &str, name: &str, version: &str, description: &str) -> PathBuf {
    let mut bytes = std::fs::read(component("hello")).unwrap();
    let mut names = vec![0];
    let mut sub = leb(name.len());
    sub.extend_from_slice(name.as_bytes());
    names.extend(leb(sub.len()));
    names.extend(sub);
    bytes.extend(custom_section("component-name", &names));
    bytes.extend(custom_section("version", version.as_bytes()));
    bytes.extend(custom_section("description", description.as_bytes()));
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The key id in a `made your publisher key ID in …` line.
fn made_key(stderr: &str) -> String {
    let rest = stderr.split("made your publisher key ").nth(1).unwrap_or_else(|| panic!("no key made: {stderr}"));
    rest.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn publish_needs_nothing_but_the_file_and_a_namespace_keeps_its_owner() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let (alice, bob) = (work.path().join("alice"), work.path().join("bob"));
    let server = registry(data.path());
    let url = server.url.as_str();
    let at = |args: &[&'static str]| {
        let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        argv.extend(["--registry".into(), url.into(), "--token".into(), TOKEN.into()]);
        argv
    };
    let run_as = |who: &Path, argv: Vec<String>| tool_as(who, &argv.iter().map(String::as_str).collect::<Vec<_>>());

    // Name (with its namespace), version and description from the component.
    let wordcount = with_metadata(work.path(), "wc.wasm", "acme:wordcount", "2.1.0", "Counts <b>words</b>");
    let mut argv = at(&["publish"]);
    argv.insert(1, wordcount.display().to_string());
    let run = run_as(&alice, argv.clone());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("acme/wordcount:2.1.0@sha256:"), "{}", run.stdout);
    let alice_key = made_key(&run.stderr);
    assert!(alice.join("publisher.key").exists() && alice.join("publisher.key.pub").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.join("publisher.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the secret key is private");
    }
    let run = run_as(&alice, at(&["search", "wordcount", "--json"]));
    let entry = &serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()[0];
    assert_eq!(
        (entry["description"].as_str(), entry["publisher"].as_str()),
        (Some("Counts <b>words</b>"), Some(alice_key.as_str()))
    );
    let run = run_as(&alice, at(&["owner", "list", "acme"]));
    assert!(run.stdout.starts_with(&format!("{alice_key} toolmesh-ed25519:")), "{}", run.stdout);
    // Publishing again uses the same key, and the same version is fine.
    let run = run_as(&alice, argv);
    assert!(run.code == 0 && !run.stderr.contains("made your publisher key"), "{}", run.stderr);

    // A second publisher cannot overwrite it: not the version, not a new
    // one, not unsigned, not by yanking.
    let other = with_metadata(work.path(), "other.wasm", "acme:wordcount", "2.1.0", "Bob's version");
    let mut argv = at(&["publish"]);
    argv.insert(1, other.display().to_string());
    let run = run_as(&bob, argv.clone());
    assert_eq!(run.code, 1, "{}", run.stdout);
    let bob_key = made_key(&run.stderr);
    assert_ne!(bob_key, alice_key);
    assert!(run.stderr.contains("namespace `acme` belongs to other publishers"), "{}", run.stderr);
    argv.extend(["--version".into(), "2.2.0".into()]);
    assert_eq!(run_as(&bob, argv.clone()).code, 1);
    argv.push("--unsigned".into());
    let run = run_as(&bob, argv.clone());
    assert!(run.code == 1 && run.stderr.contains("is owned"), "{}", run.stderr);
    let run = run_as(&bob, at(&["yank", "acme/wordcount:2.1.0"]));
    assert!(run.code == 1 && run.stderr.contains("DENIED"), "{}", run.stderr);
    let run = run_as(&alice, at(&["pull", "acme/wordcount:2.1.0", "-o", "/dev/null"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Written to, not replaced by a file (which, as root, would break the machine's /dev/null).
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null was replaced");
    let run = run_as(&alice, at(&["search", "wordcount", "--json"]));
    assert!(run.stdout.contains("Counts <b>words</b>") && !run.stdout.contains("Bob"), "{}", run.stdout);

    // Alice makes Bob an owner; then he may publish there.
    let mut add = at(&["owner", "add", "acme"]);
    add.insert(3, bob.join("publisher.key.pub").display().to_string());
    let run = run_as(&alice, add);
    assert_eq!(run.code, 0, "{}", run.stderr);
    argv.retain(|a| a != "--unsigned");
    let run = run_as(&bob, argv);
    assert!(run.code == 0 && run.stdout.starts_with("acme/wordcount:2.2.0@"), "{}", run.stderr);

    // No metadata at all: the file's name, in `local` on a registry on this machine, version 0.1.0.
    let plain = work.path().join("greeter.wasm");
    std::fs::copy(component("hello"), &plain).unwrap();
    let mut argv = at(&["publish"]);
    argv.insert(1, plain.display().to_string());
    let run = run_as(&alice, argv);
    assert!(run.code == 0 && run.stdout.starts_with("local/greeter:0.1.0@"), "{}", run.stderr);
    // A file name that makes no valid name says which flag to pass.
    let odd = work.path().join("My Tool.wasm");
    std::fs::copy(component("hello"), &odd).unwrap();
    let mut argv = at(&["publish"]);
    argv.insert(1, odd.display().to_string());
    let run = run_as(&alice, argv);
    assert!(run.code == 2 && run.stderr.contains("pass --name NS/NAME"), "{}", run.stderr);
}

#[test]
fn login_saves_the_registry_namespace_and_a_private_token() {
    let data = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let carol = work.path().join("carol");
    let server = registry(data.path());
    let url = server.url.as_str();
    let run = tool_with_input(&carol, &["login", "--registry", url, "--namespace", "carol", "--token-stdin"], TOKEN);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("namespace: carol"), "{}", run.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(carol.join("token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token is private");
    }
    // Now `tool publish FILE` goes to that registry, under that namespace, with that token.
    let file = work.path().join("hello.wasm");
    std::fs::copy(component("hello"), &file).unwrap();
    let run = tool_as(&carol, &["publish", file.to_str().unwrap()]);
    assert!(run.code == 0 && run.stdout.starts_with("carol/hello:0.1.0@"), "{}", run.stderr);
    let run = tool_as(&carol, &["search", "--json"]);
    assert!(run.stdout.contains("carol/hello"), "{}", run.stdout);
    // The saved token goes only to the saved registry, even one that would take it.
    let elsewhere_dir = tempfile::tempdir().unwrap();
    let elsewhere = registry(elsewhere_dir.path());
    let run = tool_as(&carol, &["publish", file.to_str().unwrap(), "--registry", &elsewhere.url]);
    assert!(run.code == 1 && run.stderr.contains("UNAUTHORIZED"), "{}", run.stderr);
    // Bad input is refused plainly.
    let run = tool_as(&carol, &["login", "--registry", "registry.example.com"]);
    assert!(run.code == 2 && run.stderr.contains("must be a URL"), "{}", run.stderr);
    let run = tool_as(&carol, &["login", "--registry", url, "--namespace", "Not Valid"]);
    assert!(run.code == 2 && run.stderr.contains("is not a namespace"), "{}", run.stderr);
    let run = tool_with_input(&carol, &["login", "--registry", url, "--token-stdin"], "  \n");
    assert!(run.code == 2 && run.stderr.contains("held no token"), "{}", run.stderr);
}
