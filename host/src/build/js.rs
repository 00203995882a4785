//! JavaScript and TypeScript tools: the module `app.js` or `app.ts` with
//! the JavaScript SDK, built into a component of the toolmesh world by
//! componentize-js (the engine comes inside the npm package).
//!
//! The pinned toolchain (componentize-js, the rolldown bundler and
//! TypeScript's compiler API) is installed once into the cache with npm.
//! `build.mjs` (beside the SDK) type-checks TypeScript, makes the JSON
//! Schemas of tools that give none from their types and doc comments, and
//! bundles the module, its local modules, its npm packages and the SDK into
//! one ES module; componentize-js makes that a component, with `fetch` built
//! in only for a tool that requests network access.

use super::{BuildError, Project};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool's module file, in JavaScript.
pub const MODULE_FILE: &str = "app.js";
/// The tool's module file, in TypeScript.
pub const TS_MODULE_FILE: &str = "app.ts";
/// The npm packages of the toolchain, pinned: componentize-js, rolldown,
/// and TypeScript's compiler API (under the name componentize-js's own
/// dependencies give it, so npm installs it once).
pub const PACKAGES: [&str; 3] =
    ["@bytecodealliance/componentize-js@0.23.0", "rolldown@1.3.4", "typescript-compiler-api@npm:typescript@6.0.3"];
/// The toolchain's directory in the cache (named by its pins).
pub const TOOLCHAIN_DIR: &str = "js-toolchain-componentize-0.23.0-rolldown-1.3.4-ts-6.0.3";

/// The JavaScript SDK, carried inside the binary.
const SDK: &str = include_str!("../../../guest-sdk/js/toolmesh.js");
/// Its types, for TypeScript.
const SDK_TYPES: &str = include_str!("../../../guest-sdk/js/toolmesh.d.ts");
/// The type-check, schema and bundling step.
const BUILD_SCRIPT: &str = include_str!("../../../guest-sdk/js/build.mjs");
/// The toolmesh world.
const WIT: &str = include_str!("../../../wit/types.wit");

/// What Node.js the toolchain needs (rolldown's requirement), for messages.
const NODE: &str = "Node.js 20.19, 22.12 or newer";

/// The toolchain's `node_modules` in the cache, installed on first use.
/// A marker written after a complete install (as `scripts/test.sh` writes
/// it) tells an install cut short from a finished one.
fn toolchain(cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let prefix = cache.join(TOOLCHAIN_DIR);
    let modules = prefix.join("node_modules");
    let marker = prefix.join("installed");
    if marker.is_file() {
        return Ok(modules);
    }
    say(&format!("installing componentize-js, rolldown and TypeScript into {} (once)", prefix.display()));
    let _ = std::fs::remove_dir_all(&prefix);
    super::run(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .args(PACKAGES),
        &format!("npm ({NODE} is needed to build JavaScript tools)"),
    )
    .map_err(|(_, err)| BuildError(format!("cannot install the JavaScript toolchain: {}", super::last_line(&err))))?;
    super::write_file(&marker, "")?;
    Ok(modules)
}

/// The project's module file: `app.ts` if there, else `app.js`.
pub fn module_file(dir: &Path) -> &'static str {
    if dir.join(TS_MODULE_FILE).is_file() { TS_MODULE_FILE } else { MODULE_FILE }
}

/// Installs the npm packages of the project's `package.json`, if it names
/// any and they are not installed, or `package.json` or its lock file
/// changed since. Packages' install scripts are not run: bundling needs
/// their files only. With a `package-lock.json`, exactly what it locks.
fn project_packages(project: &Project, say: &dyn Fn(&str)) -> Result<(), BuildError> {
    let manifest = project.dir.join("package.json");
    let Ok(text) = std::fs::read_to_string(&manifest) else { return Ok(()) };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| BuildError(format!("package.json:{}: {e}", e.line())))?;
    let wanted = json.get("dependencies").and_then(|d| d.as_object()).is_some_and(|d| !d.is_empty());
    // npm writes this after every install.
    let installed = project.dir.join("node_modules/.package-lock.json");
    let lock = project.dir.join("package-lock.json");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let fresh = modified(&installed).is_some_and(|at| [&manifest, &lock].iter().all(|f| modified(f) <= Some(at)));
    if !wanted || fresh {
        return Ok(());
    }
    say("installing the packages of package.json");
    let verb = if lock.is_file() { "ci" } else { "install" };
    super::run(
        Command::new("npm")
            .args([verb, "--silent", "--no-audit", "--no-fund", "--omit=dev", "--ignore-scripts"])
            .current_dir(&project.dir),
        "npm",
    )
    .map(|_| ())
    .map_err(|(_, err)| BuildError(format!("package.json: npm {verb} failed: {}", super::last_line(&err))))
}

/// Builds `project`'s module into its component.
pub fn build(project: &Project, cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let modules = toolchain(cache, say)?;
    project_packages(project, say)?;
    let work = project.work_dir();
    let write = |name: &str, text: &str| {
        let path = work.join(name);
        super::write_file(&path, text).map(|_| path)
    };
    let sdk = write("toolmesh.js", SDK)?;
    let types = write("toolmesh.d.ts", SDK_TYPES)?;
    let script = write("build.mjs", BUILD_SCRIPT)?;
    let main = work.join("main.js");
    let config = serde_json::json!({
        "entry": project.dir.join(module_file(&project.dir)),
        "sdk": sdk,
        "types": types,
        "out": main,
        "work": work,
        "toolchain": modules,
    });
    let config = write("build.json", &config.to_string())?;
    say("checking and bundling");
    super::run(Command::new("node").arg(&script).arg(&config), &format!("node ({NODE})"))
        .map_err(|(_, err)| BuildError(super::last_line(&err).trim().to_owned()))?;
    write("wit/types.wit", WIT)?;

    say("building with componentize-js");
    let out = project.output();
    let partial = out.with_extension("wasm.partial");
    let mut command = Command::new("node");
    command
        .arg(modules.join("@bytecodealliance/componentize-js/src/cli.js"))
        .arg(&main)
        .arg("--wit")
        .arg(work.join("wit"))
        .args(["-n", "sdk-tool", "-o"])
        .arg(&partial);
    if !project.uses_network {
        command.args(["-d", "http", "-d", "fetch-event"]);
    }
    if let Err((out, err)) = super::run(&mut command, "componentize-js") {
        let _ = std::fs::remove_file(&partial);
        let text = format!("{out}\n{err}");
        let line = text.lines().find(|l| l.contains("Error")).unwrap_or_else(|| super::last_line(&text));
        return Err(BuildError(format!("{}: {}", module_file(&project.dir), line.trim())));
    }
    std::fs::rename(&partial, &out).map_err(|e| BuildError(format!("cannot write {}: {e}", out.display())))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_script_installs_the_same_toolchain() {
        // scripts/test.sh installs it while Rust compiles; both must agree.
        let script = include_str!("../../../scripts/test.sh");
        assert!(script.contains(TOOLCHAIN_DIR), "scripts/test.sh does not name {TOOLCHAIN_DIR}");
        for package in PACKAGES {
            assert!(script.contains(package), "scripts/test.sh does not install {package}");
        }
    }
}
