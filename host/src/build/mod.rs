//! `tool build`: a tool's source directory into a component, with the
//! project's pinned toolchains, installed under the cache on first use.
//!
//! - [`python`]: a module of `@tool` functions (the Python SDK in
//!   `guest-sdk/python`, carried inside this binary) built by
//!   componentize-py, with the pure-Python packages of its
//!   `requirements.txt`;
//! - [`js`]: a JavaScript or TypeScript module of `tool(...)` definitions
//!   (the JavaScript SDK in `guest-sdk/js`), bundled with its modules and
//!   npm packages and built by componentize-js;
//! - [`rust`]: a crate built by cargo for `wasm32-wasip2`.
//!
//! The component is written beside the tool's `tool.toml`, so `tool
//! publish NAME.wasm` finds everything it needs.

pub mod js;
pub mod python;
pub mod rust;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a tool could not be built: one line, naming the file and line at
/// fault when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(pub String);

/// The languages `tool build` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// A crate with `Cargo.toml`, using the Rust guest SDK.
    Rust,
    /// A module `app.py` of `@tool` functions.
    Python,
    /// A module `app.js` or `app.ts` of `tool(...)` definitions.
    JavaScript,
}

impl Language {
    /// The language of the project in `dir`, by its files.
    pub fn detect(dir: &Path) -> Result<Language, BuildError> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Language::Rust)
        } else if dir.join(python::MODULE_FILE).is_file() {
            Ok(Language::Python)
        } else if dir.join(js::MODULE_FILE).is_file() || dir.join(js::TS_MODULE_FILE).is_file() {
            Ok(Language::JavaScript)
        } else {
            Err(BuildError(format!(
                "{} holds no tool to build: expected Cargo.toml (Rust), {} (Python), {} (JavaScript) \
                 or {} (TypeScript); `tool new NAME --lang …` makes one",
                dir.display(),
                python::MODULE_FILE,
                js::MODULE_FILE,
                js::TS_MODULE_FILE
            )))
        }
    }
}

/// Where a build leaves its work and what it is called.
pub struct Project {
    /// The tool's directory.
    pub dir: PathBuf,
    /// Its language.
    pub language: Language,
    /// The component's file name, without `.wasm`.
    pub name: String,
    /// Whether the tool requests network access (`fetch` in JavaScript and
    /// `toolmesh.http` in Python are built in only then: their import needs
    /// a network grant to run at all).
    pub uses_network: bool,
}

impl Project {
    /// The project in `dir`: its language, and its name from `tool.toml`'s
    /// `name` (the part after the namespace) or else the directory's.
    pub fn open(dir: &Path, name: Option<&str>, uses_network: bool) -> Result<Project, BuildError> {
        let dir = std::fs::canonicalize(dir).map_err(|e| BuildError(format!("cannot open {}: {e}", dir.display())))?;
        let language = Language::detect(&dir)?;
        let fallback = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "tool".into());
        let name = name.map(|n| n.rsplit('/').next().unwrap_or(n).to_owned()).unwrap_or(fallback);
        let name: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
        Ok(Project { dir, language, name, uses_network })
    }

    /// Where the component is written.
    pub fn output(&self) -> PathBuf {
        self.dir.join(format!("{}.wasm", self.name))
    }

    /// Where the build keeps its work.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("target").join("toolmesh")
    }

    /// Builds the component with the toolchains in `cache`, telling
    /// `say` what takes time; returns its path.
    pub fn build(&self, cache: &Path, say: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
        match self.language {
            Language::Python => python::build(self, cache, say),
            Language::JavaScript => js::build(self, cache, say),
            Language::Rust => rust::build(self, say),
        }
    }
}

/// Runs `command`, returning its stdout, or its stderr as the error.
pub(crate) fn run(command: &mut Command, what: &str) -> Result<String, (String, String)> {
    match command.output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => {
            Err((String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned()))
        }
        Err(e) => Err((String::new(), format!("cannot run {what}: {e}"))),
    }
}

/// The last line of `text` that says something.
pub(crate) fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("failed")
}

/// Writes `text` to `path`, making its directory first.
pub(crate) fn write_file(path: &Path, text: &str) -> Result<(), BuildError> {
    std::fs::create_dir_all(path.parent().unwrap_or(path))
        .and_then(|_| std::fs::write(path, text))
        .map_err(|e| BuildError(format!("cannot write {}: {e}", path.display())))
}
