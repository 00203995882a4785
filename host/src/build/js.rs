//! JavaScript tools: the module `app.js` with the JavaScript SDK, built
//! into a component of the toolmesh world by componentize-js (pinned,
//! installed once into the cache with npm; the engine comes inside the
//! package). The SDK and the module become one ES module; `fetch` is built
//! in only for a tool that requests network access.

use super::{BuildError, Project};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool's module file.
pub const MODULE_FILE: &str = "app.js";
/// The componentize-js release the project is built and tested with.
pub const COMPONENTIZE_JS: &str = "0.23.0";

/// The JavaScript SDK, carried inside the binary.
const SDK: &str = include_str!("../../../guest-sdk/js/toolmesh.js");
/// The toolmesh world.
const WIT: &str = include_str!("../../../wit/types.wit");

/// componentize-js in the cache, installed on first use.
fn toolchain(cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let prefix = cache.join(format!("componentize-js-{COMPONENTIZE_JS}"));
    let cli = prefix.join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    if cli.is_file() {
        return Ok(cli);
    }
    say(&format!("installing componentize-js {COMPONENTIZE_JS} into {} (once)", prefix.display()));
    super::run(
        Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&prefix)
            .arg(format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS}")),
        "npm (Node.js 20 or newer is needed to build JavaScript tools)",
    )
    .map_err(|(_, err)| BuildError(format!("cannot install componentize-js: {}", super::last_line(&err))))?;
    Ok(cli)
}

/// Builds `project`'s `app.js` into its component.
pub fn build(project: &Project, cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let cli = toolchain(cache, say)?;
    let source = std::fs::read_to_string(project.dir.join(MODULE_FILE))
        .map_err(|e| BuildError(format!("{MODULE_FILE}: {e}")))?;
    let work = project.work_dir();
    let wit = work.join("wit");
    let write = |path: PathBuf, text: &str| super::write_file(&path, text);
    // The module alone first, so a syntax error names its own line.
    let check = work.join("app.mjs");
    write(check.clone(), &source)?;
    super::run(Command::new("node").arg("--check").arg(&check), "node").map_err(|(_, err)| syntax_error(&err))?;
    write(wit.join("types.wit"), WIT)?;
    // One module: the SDK, then the tool's module without its imports of it.
    let app: String =
        source.lines().map(|line| if imports_sdk(line) { "" } else { line }).collect::<Vec<_>>().join("\n");
    let main = work.join("main.js");
    write(main.clone(), &format!("{SDK}\n{app}\n"))?;

    say("building with componentize-js");
    let out = project.output();
    let partial = out.with_extension("wasm.partial");
    let mut command = Command::new("node");
    command.arg(&cli).arg(&main).arg("--wit").arg(&wit).args(["-n", "tool", "-o"]).arg(&partial);
    if !project.uses_network {
        command.args(["-d", "http", "-d", "fetch-event"]);
    }
    if let Err((out, err)) = super::run(&mut command, "componentize-js") {
        let _ = std::fs::remove_file(&partial);
        let text = format!("{out}\n{err}");
        let line = text.lines().find(|l| l.contains("Error")).unwrap_or_else(|| super::last_line(&text));
        return Err(BuildError(format!("{MODULE_FILE}: {}", line.trim())));
    }
    std::fs::rename(&partial, &out).map_err(|e| BuildError(format!("cannot write {}: {e}", out.display())))?;
    Ok(out)
}

/// Whether `line` imports the SDK (`import { tool } from "toolmesh";`).
fn imports_sdk(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("import ") && (line.ends_with("from \"toolmesh\";") || line.ends_with("from 'toolmesh';"))
}

/// `node --check`'s report as `app.js:LINE: SyntaxError: …`.
fn syntax_error(report: &str) -> BuildError {
    let line = report.lines().next().and_then(|l| l.rsplit(':').next()).unwrap_or("?");
    let error = report.lines().find(|l| l.contains("Error")).unwrap_or("a syntax error").trim();
    BuildError(format!("{MODULE_FILE}:{line}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_names_the_line_and_the_sdk_import_is_dropped() {
        let report =
            "/p/target/toolmesh/app.mjs:4\n  return (1 +;\n             ^\n\nSyntaxError: Unexpected token ';'\n";
        assert_eq!(syntax_error(report).0, "app.js:4: SyntaxError: Unexpected token ';'");
        assert!(imports_sdk("import { tool, ToolError } from \"toolmesh\";"));
        assert!(!imports_sdk("import { other } from \"elsewhere\";"));
    }
}
