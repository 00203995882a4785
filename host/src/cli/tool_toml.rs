//! `tool.toml`: what a publisher says about a tool besides its code (its
//! description, source and the permissions it requests), read by
//! `tool publish`, and by `tool run` and `tool inspect` for local files.

use super::Failure;
use anyhow::Context;
use serde::Deserialize;
use std::path::Path;
use toolmesh_host::grant::{PermissionsToml, ToolRequest};

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolToml {
    /// Repository name, such as `acme/text` (what `tool publish` pushes to
    /// unless given `--name`).
    pub name: Option<String>,
    /// Version, also the tag (unless `tool publish` is given `--version`).
    pub version: Option<String>,
    /// One-line description.
    pub description: Option<String>,
    /// Where the source lives.
    pub source: Option<String>,
    /// What the tool asks of the nodes that run it.
    pub permissions: PermissionsToml,
}

impl ToolToml {
    /// `explicit`, or else `tool.toml` beside `component` if there; the
    /// empty file if neither.
    pub fn read(explicit: Option<&Path>, component: &Path) -> Result<Self, Failure> {
        let beside = component.with_file_name("tool.toml");
        let path = match explicit {
            Some(path) => path.to_owned(),
            None if beside.exists() => beside,
            None => return Ok(ToolToml::default()),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))
            .map_err(Failure::usage)?;
        Self::parse(&text).map_err(|e| Failure::usage(anyhow::anyhow!("invalid {}: {e}", path.display())))
    }

    /// Parses the text of a `tool.toml`; the error is one line.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| toolmesh_host::config::toml_error(text, &e))
    }

    /// The typed request of its `[permissions]`.
    pub fn request(&self) -> Result<ToolRequest, Failure> {
        self.permissions.to_request().context("invalid [permissions] in tool.toml").map_err(Failure::usage)
    }
}
