//! Rust tools: `cargo build --release --target wasm32-wasip2`, with the
//! Rust guest SDK (`toolmesh-guest`) kept in the cache for projects made by
//! `tool new` outside this repository.

use super::{BuildError, Project};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest SDK's manifest outside the workspace, its versions pinned as
/// the workspace pins them.
const SDK_MANIFEST: &str = r#"[package]
name = "toolmesh-guest"
description = "Write toolmesh tools: typed arguments in, MCP-shaped content out, built as a WebAssembly component"
version = "0.1.0"
edition = "2024"
rust-version = "1.95"
license = "Apache-2.0"

[dependencies]
wit-bindgen = "0.63"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
schemars = "1"
serde_path_to_error = "0.1"
wasip2 = { version = "1", optional = true }

[features]
http = ["dep:wasip2"]
"#;

/// The guest SDK's files, carried inside the binary, by path under its root.
const SDK: &[(&str, &str)] = &[
    ("guest-sdk/Cargo.toml", SDK_MANIFEST),
    ("guest-sdk/src/lib.rs", include_str!("../../../guest-sdk/src/lib.rs")),
    ("guest-sdk/src/ask.rs", include_str!("../../../guest-sdk/src/ask.rs")),
    ("guest-sdk/src/dispatch.rs", include_str!("../../../guest-sdk/src/dispatch.rs")),
    ("guest-sdk/src/gpu.rs", include_str!("../../../guest-sdk/src/gpu.rs")),
    ("guest-sdk/src/linalg.rs", include_str!("../../../guest-sdk/src/linalg.rs")),
    ("guest-sdk/src/host.rs", include_str!("../../../guest-sdk/src/host.rs")),
    ("guest-sdk/src/http.rs", include_str!("../../../guest-sdk/src/http.rs")),
    ("guest-sdk/src/offer.rs", include_str!("../../../guest-sdk/src/offer.rs")),
    ("guest-sdk/src/output.rs", include_str!("../../../guest-sdk/src/output.rs")),
    ("guest-sdk/src/tool.rs", include_str!("../../../guest-sdk/src/tool.rs")),
    ("guest-sdk/src/tools.rs", include_str!("../../../guest-sdk/src/tools.rs")),
    ("wit/types.wit", include_str!("../../../wit/types.wit")),
];

/// The guest SDK crate in `cache`, written there once per SDK version
/// (by the hash of its files); its directory.
pub fn vendored_sdk(cache: &Path) -> Result<PathBuf, BuildError> {
    let all: String = SDK.iter().map(|(path, text)| format!("{path}\0{text}\0")).collect();
    let hash = toolmesh_registry::digest::Digest::of(all.as_bytes()).to_string();
    let root = cache.join(format!("toolmesh-guest-{}", &hash[hash.len() - 12..]));
    let crate_dir = root.join("guest-sdk");
    if crate_dir.join("Cargo.toml").is_file() {
        return Ok(crate_dir);
    }
    for (path, text) in SDK {
        super::write_file(&root.join(path), text)?;
    }
    Ok(crate_dir)
}

/// Adds the `wasm32-wasip2` target with rustup if it is missing.
fn ensure_target(say: &dyn Fn(&str)) -> Result<(), BuildError> {
    let installed = super::run(Command::new("rustup").args(["target", "list", "--installed"]), "rustup")
        .map_err(|(_, err)| BuildError(format!("Rust tools need rustup: {}", super::last_line(&err))))?;
    if installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    say("adding the wasm32-wasip2 target (once)");
    super::run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]), "rustup")
        .map(drop)
        .map_err(|(_, err)| BuildError(format!("cannot add wasm32-wasip2: {}", super::last_line(&err))))
}

/// Builds the crate in `project.dir` and copies its component beside its
/// `tool.toml`.
pub fn build(project: &Project, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    ensure_target(say)?;
    say("building with cargo (wasm32-wasip2, release)");
    let manifest = project.dir.join("Cargo.toml");
    let metadata = super::run(
        Command::new("cargo")
            .args(["metadata", "--format-version", "1", "--no-deps", "--manifest-path"])
            .arg(&manifest),
        "cargo",
    )
    .map_err(|(_, err)| BuildError(format!("Cargo.toml: {}", super::last_line(&err))))?;
    let metadata: serde_json::Value =
        serde_json::from_str(&metadata).map_err(|e| BuildError(format!("cargo metadata: {e}")))?;
    let target = metadata["target_directory"].as_str().unwrap_or("target").to_owned();
    let package = metadata["packages"][0]["name"].as_str().unwrap_or(&project.name).replace('-', "_");
    super::run(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(&manifest),
        "cargo",
    )
    .map_err(|(_, err)| {
        // The first error and where it is, as cargo prints them.
        let lines: Vec<&str> = err.lines().collect();
        let at = lines.iter().position(|l| l.starts_with("error")).unwrap_or(0);
        let place = lines[at..].iter().find_map(|l| l.trim_start().strip_prefix("--> ")).unwrap_or("");
        BuildError(
            format!("{place}: {}", lines.get(at).copied().unwrap_or("cargo failed"))
                .trim_start_matches(": ")
                .to_owned(),
        )
    })?;
    let built = PathBuf::from(target).join("wasm32-wasip2/release").join(format!("{package}.wasm"));
    let out = project.output();
    std::fs::copy(&built, &out).map_err(|e| BuildError(format!("cannot copy {}: {e}", built.display())))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_of_the_sdk_is_carried() {
        let lib = SDK.iter().find(|(path, _)| *path == "guest-sdk/src/lib.rs").unwrap().1;
        let mut seen = 0;
        for line in lib.lines() {
            let line = line.trim_start_matches("pub ");
            if let Some(name) = line.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) {
                let path = format!("guest-sdk/src/{name}.rs");
                assert!(SDK.iter().any(|(carried, _)| *carried == path), "{path} is not carried");
                seen += 1;
            }
        }
        assert!(seen >= 7, "only {seen} modules found in lib.rs");
    }
}
