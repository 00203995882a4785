//! Rust tools: `cargo build --release --target wasm32-wasip2`.

use super::{BuildError, Project};
use std::path::PathBuf;
use std::process::Command;

/// Builds the crate in `project.dir` and copies its component beside its
/// `tool.toml`.
pub fn build(project: &Project, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
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
