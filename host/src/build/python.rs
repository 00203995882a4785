//! Python tools: the module `app.py` with the Python SDK, built into a
//! component of the toolmesh world by componentize-py (pinned, installed
//! once into the cache). Pure-Python packages named in `requirements.txt`
//! are bundled (wheels tagged `py3-none-any` only: nothing compiled can run
//! inside the component). A tool that requests network access is built
//! against a world that also imports `wasi:http` (the Python SDK's
//! `toolmesh.http`).

use super::{BuildError, Project};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tool's module file.
pub const MODULE_FILE: &str = "app.py";
/// The componentize-py release the project is built and tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The Python SDK's files, carried inside the binary.
const SDK: &[(&str, &str)] = &[
    ("__init__.py", include_str!("../../../guest-sdk/python/toolmesh/__init__.py")),
    ("_errors.py", include_str!("../../../guest-sdk/python/toolmesh/_errors.py")),
    ("_handler.py", include_str!("../../../guest-sdk/python/toolmesh/_handler.py")),
    ("_host.py", include_str!("../../../guest-sdk/python/toolmesh/_host.py")),
    ("_registry.py", include_str!("../../../guest-sdk/python/toolmesh/_registry.py")),
    ("_offer.py", include_str!("../../../guest-sdk/python/toolmesh/_offer.py")),
    ("_server.py", include_str!("../../../guest-sdk/python/toolmesh/_server.py")),
    ("ask.py", include_str!("../../../guest-sdk/python/toolmesh/ask.py")),
    ("_schema.py", include_str!("../../../guest-sdk/python/toolmesh/_schema.py")),
    ("http.py", include_str!("../../../guest-sdk/python/toolmesh/http.py")),
];
/// The world of tools that request network access, and the WASI
/// interfaces it imports (`wasi:http` and what that refers to).
const HTTP_WIT: &[(&str, &str)] = &[
    ("http.wit", include_str!("../../../guest-sdk/python/wit/http.wit")),
    ("deps/cli.wit", include_str!("../../../guest-sdk/python/wit/deps/cli.wit")),
    ("deps/clocks.wit", include_str!("../../../guest-sdk/python/wit/deps/clocks.wit")),
    ("deps/filesystem.wit", include_str!("../../../guest-sdk/python/wit/deps/filesystem.wit")),
    ("deps/http.wit", include_str!("../../../guest-sdk/python/wit/deps/http.wit")),
    ("deps/io.wit", include_str!("../../../guest-sdk/python/wit/deps/io.wit")),
    ("deps/random.wit", include_str!("../../../guest-sdk/python/wit/deps/random.wit")),
    ("deps/sockets.wit", include_str!("../../../guest-sdk/python/wit/deps/sockets.wit")),
];
/// The toolmesh world.
const WIT: &str = include_str!("../../../wit/types.wit");

/// The module componentize-py builds: the tool's module (registering its
/// tools) and the handler made from them.
const ENTRY: &str = r#"# Only modules imported at build time exist at run time: the standard
# library's own lazy imports (Counter.most_common needs heapq) are loaded now.
import base64, bisect, collections, copy, dataclasses, datetime, decimal, enum, fractions  # noqa: E401,F401
import functools, hashlib, heapq, itertools, json, math, operator, random, re, statistics  # noqa: E401,F401
import string, textwrap, typing, unicodedata, urllib.parse  # noqa: E401,F401

import toolmesh
import app  # noqa: F401  (its @tool functions register themselves)
from toolmesh._handler import Handler  # noqa: F401  (the world's exports)
from toolmesh._server import Server  # noqa: F401

if not toolmesh.tools():
    raise toolmesh.ToolDefinitionError("app.py: no function has the @tool decorator (from toolmesh import tool)")
"#;

/// Checks every `.py` file of the project for syntax errors with the
/// machine's Python, printing `file:line: message`.
const SYNTAX_CHECK: &str = r#"import pathlib, sys
root = pathlib.Path(sys.argv[1])
for path in sorted(root.glob("*.py")):
    try:
        compile(path.read_bytes(), str(path), "exec")
    except SyntaxError as e:
        print(f"{path.name}:{e.lineno}: SyntaxError: {e.msg}")
        sys.exit(1)
"#;

/// componentize-py in the cache, installed on first use.
fn toolchain(cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let bin = venv.join("bin/componentize-py");
    if bin.is_file() {
        return Ok(bin);
    }
    say(&format!("installing componentize-py {COMPONENTIZE_PY} into {} (once)", venv.display()));
    let fail =
        |(_, err): (String, String)| BuildError(format!("cannot install componentize-py: {}", super::last_line(&err)));
    super::run(Command::new("python3").args(["-m", "venv"]).arg(&venv), "python3").map_err(fail)?;
    super::run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]),
        "pip",
    )
    .map_err(fail)?;
    Ok(bin)
}

/// Builds `project`'s `app.py` into its component.
pub fn build(project: &Project, cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let componentize = toolchain(cache, say)?;
    super::run(Command::new("python3").arg("-c").arg(SYNTAX_CHECK).arg(&project.dir), "python3").map_err(
        |(out, err)| {
            BuildError(if out.trim().is_empty() { super::last_line(&err).to_owned() } else { out.trim().to_owned() })
        },
    )?;
    let work = project.work_dir();
    let (sdk, wit, deps) = (work.join("sdk"), work.join("wit"), work.join("deps"));
    let write = |path: PathBuf, text: &str| super::write_file(&path, text);
    for (file, text) in SDK {
        write(sdk.join("toolmesh").join(file), text)?;
    }
    write(sdk.join("toolmesh_main.py"), ENTRY)?;
    // A fresh directory: a world left from an earlier build must not linger.
    let _ = std::fs::remove_dir_all(&wit);
    write(wit.join("types.wit"), WIT)?;
    let world = if project.uses_network {
        for (file, text) in HTTP_WIT {
            write(wit.join(file), text)?;
        }
        "tool-http"
    } else {
        "sdk-tool"
    };
    bundle_requirements(project, &componentize, &deps, say)?;

    say("building with componentize-py");
    let out = project.output();
    let partial = out.with_extension("wasm.partial");
    let result = super::run(
        Command::new(&componentize)
            .env("RUST_BACKTRACE", "0")
            .arg("-d")
            .arg(&wit)
            .args(["-w", world, "componentize", "-p"])
            .arg(&project.dir)
            .arg("-p")
            .arg(&sdk)
            .arg("-p")
            .arg(&deps)
            .arg("toolmesh_main")
            .arg("-o")
            .arg(&partial),
        "componentize-py",
    );
    if let Err((out, err)) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(BuildError(explain(&format!("{out}\n{err}"))));
    }
    std::fs::rename(&partial, &out).map_err(|e| BuildError(format!("cannot write {}: {e}", out.display())))?;
    Ok(out)
}

/// Installs the pure-Python packages of `requirements.txt` into `deps`,
/// again only when the file changed.
fn bundle_requirements(
    project: &Project,
    componentize: &Path,
    deps: &Path,
    say: &dyn Fn(&str),
) -> Result<(), BuildError> {
    std::fs::create_dir_all(deps).map_err(|e| BuildError(format!("cannot make {}: {e}", deps.display())))?;
    let requirements = project.dir.join("requirements.txt");
    let Ok(text) = std::fs::read_to_string(&requirements) else { return Ok(()) };
    let stamp = deps.join(".requirements");
    if std::fs::read_to_string(&stamp).is_ok_and(|done| done == text) {
        return Ok(());
    }
    say("bundling the packages of requirements.txt");
    let _ = std::fs::remove_dir_all(deps);
    let pip = componentize.with_file_name("pip");
    super::run(
        Command::new(pip)
            .args(["install", "-q", "--disable-pip-version-check", "--target"])
            .arg(deps)
            .args(["--only-binary=:all:", "--platform", "any", "--implementation", "py", "--python-version", "3.14"])
            .arg("-r")
            .arg(&requirements),
        "pip",
    )
    .map_err(|(_, err)| {
        BuildError(format!(
            "requirements.txt: {} (only pure-Python packages, wheels tagged py3-none-any, can be bundled)",
            super::last_line(&err).trim_start_matches("ERROR: ")
        ))
    })?;
    super::write_file(&stamp, &text)
}

/// One line out of componentize-py's failure: the SDK's own message when
/// the module defined a tool it cannot describe, else the exception and
/// the last line of the tool's own files it passed through.
fn explain(output: &str) -> String {
    if let Some(line) = output.lines().rev().find_map(|l| l.split_once("ToolDefinitionError: ").map(|(_, m)| m)) {
        return line.trim().to_owned();
    }
    // componentize-py's own backtrace, if any, says nothing about the tool.
    let output = output.split("Stack backtrace:").next().unwrap_or(output);
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let error = lines
        .iter()
        .rev()
        .find(|l| !l.starts_with(' ') && (l.contains("Error") || l.contains("Exception")) && l.contains(':'))
        .copied()
        .unwrap_or("the build failed");
    // `  File "/0/app.py", line 12, in <module>`: the project is the first
    // directory componentize-py was given, mounted at /0.
    let place = lines.iter().rev().find_map(|l| {
        let rest = l.trim().strip_prefix("File \"/0/")?;
        let (file, rest) = rest.split_once('"')?;
        let line = rest.trim_start_matches(", line ").split(',').next()?;
        Some(format!("{file}:{line}: "))
    });
    format!("{}{}", place.unwrap_or_default(), error.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_one_line_naming_the_file() {
        let sdk_error = "Traceback (most recent call last):\n  File \"/p/target/toolmesh/sdk/toolmesh_main.py\", line 2\n\
                         toolmesh._errors.ToolDefinitionError: app.py:7: tool `f`: parameter `x`: `set` has no JSON Schema\n";
        assert_eq!(explain(sdk_error), "app.py:7: tool `f`: parameter `x`: `set` has no JSON Schema");
        let raised = "AssertionError: Traceback (most recent call last):\n  File \"/1/toolmesh_main.py\", line 8, in <module>\n\
                      File \"/0/app.py\", line 4, in <module>\n    import numpy\nModuleNotFoundError: No module named 'numpy'\n\n\
                      Caused by:\n    ModuleNotFoundError: No module named 'numpy'\n\nStack backtrace:\n   0: anyhow\n";
        assert_eq!(explain(raised), "app.py:4: ModuleNotFoundError: No module named 'numpy'");
    }
}
