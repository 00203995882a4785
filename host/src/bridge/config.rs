//! The servers file (`--mcp-servers FILE`): Claude Desktop's
//! `claude_desktop_config.json` format, so a user points the node at the
//! file they already have.
//!
//! ```json
//! {"mcpServers": {
//!   "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}},
//!   "docs": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer …"}}
//! }}
//! ```
//!
//! Other top-level keys of the file (Claude Desktop's own settings) are
//! ignored, and so are keys of an entry this node has no use for, with a
//! warning. A name becomes part of the tools' names, so characters other
//! than letters, digits, `_` and `-` are written as `_`.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One server of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    /// Its name: 1–48 of `[A-Za-z0-9_-]`.
    pub name: String,
    /// How it is reached.
    pub launch: Launch,
}

/// How a bridged server is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// A local program speaking MCP on its standard streams, started in
    /// the OS sandbox.
    Stdio {
        /// The program (found on the `PATH` inside the sandbox if not a path).
        command: String,
        /// Its arguments.
        args: Vec<String>,
        /// Its environment, beyond `PATH` and `HOME`.
        env: BTreeMap<String, String>,
    },
    /// A remote server speaking streamable HTTP.
    Http {
        /// Its MCP endpoint.
        url: String,
        /// Headers sent with every request (credentials, typically).
        headers: BTreeMap<String, String>,
    },
}

/// A servers file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServersFileError(String);

#[derive(Deserialize)]
struct File {
    #[serde(rename = "mcpServers")]
    servers: Option<BTreeMap<String, Value>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Entry {
    command: Option<String>,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    url: Option<String>,
    headers: BTreeMap<String, String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    disabled: bool,
}

/// The keys of an entry this node reads.
const KNOWN: [&str; 7] = ["command", "args", "env", "url", "headers", "type", "disabled"];

/// Longest server name.
const MAX_NAME: usize = 48;

/// The name `raw` is known by in tool names.
fn clean_name(raw: &str) -> String {
    raw.chars().take(MAX_NAME).map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

/// Reads the servers file at `path`.
pub fn load(path: &Path) -> Result<Vec<ServerEntry>, ServersFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServersFileError(format!("cannot read the servers file {}: {e}", path.display())))?;
    parse(&text).map_err(|e| ServersFileError(format!("in the servers file {}: {}", path.display(), e.0)))
}

/// Reads a servers file's text; disabled entries are left out.
pub fn parse(text: &str) -> Result<Vec<ServerEntry>, ServersFileError> {
    let file: File = serde_json::from_str(text).map_err(|e| ServersFileError(format!("not JSON of its shape: {e}")))?;
    let servers = file.servers.ok_or_else(|| ServersFileError("no `mcpServers` object".into()))?;
    let mut entries: Vec<ServerEntry> = Vec::new();
    for (raw, value) in servers {
        if raw.is_empty() {
            return Err(ServersFileError("a server has an empty name".into()));
        }
        let name = clean_name(&raw);
        if let Some(object) = value.as_object() {
            for key in object.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
                tracing::warn!(server = %raw, key, "key of the servers file ignored");
            }
        }
        let entry: Entry =
            serde_json::from_value(value).map_err(|e| ServersFileError(format!("server `{raw}`: {e}")))?;
        if entry.disabled {
            continue;
        }
        let launch = match (entry.command, entry.url, entry.kind.as_deref()) {
            (_, _, Some("sse")) => {
                return Err(ServersFileError(format!(
                    "server `{raw}`: the SSE transport is not bridged (streamable HTTP `url` entries and stdio `command` entries are)"
                )));
            }
            (Some(command), None, None | Some("stdio")) if !command.trim().is_empty() => {
                Launch::Stdio { command, args: entry.args, env: entry.env }
            }
            (None, Some(url), None | Some("http" | "streamable-http" | "streamableHttp")) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ServersFileError(format!("server `{raw}`: url {url:?} is not http(s)")));
                }
                Launch::Http { url, headers: entry.headers }
            }
            (Some(_), Some(_), _) => {
                return Err(ServersFileError(format!("server `{raw}`: has both `command` and `url`; give one")));
            }
            (_, _, Some(kind)) if !matches!(kind, "stdio" | "http" | "streamable-http" | "streamableHttp") => {
                return Err(ServersFileError(format!("server `{raw}`: unknown type {kind:?}")));
            }
            _ => {
                return Err(ServersFileError(format!(
                    "server `{raw}`: needs a `command` (a local program) or a `url` (a streamable HTTP server)"
                )));
            }
        };
        if entries.iter().any(|e| e.name == name) {
            return Err(ServersFileError(format!(
                "server `{raw}`: its name reads as `{name}` in tool names, as another server's does"
            )));
        }
        entries.push(ServerEntry { name, launch });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_desktop_files_read() {
        let text = r#"{
          "globalShortcut": "Ctrl+Space",
          "mcpServers": {
            "time": {"command": "uvx", "args": ["mcp-server-time"], "env": {"TZ": "UTC"}, "autoApprove": []},
            "my docs": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer x"}},
            "off": {"command": "x", "disabled": true}
          }
        }"#;
        let entries = parse(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "my_docs");
        assert!(
            matches!(&entries[0].launch, Launch::Http { url, headers } if url.ends_with("/mcp") && headers.len() == 1)
        );
        assert_eq!(
            entries[1].launch,
            Launch::Stdio {
                command: "uvx".into(),
                args: vec!["mcp-server-time".into()],
                env: BTreeMap::from([("TZ".into(), "UTC".into())])
            }
        );
    }

    #[test]
    fn unusable_entries_are_refused_with_their_name() {
        for (text, says) in [
            (r#"{"mcpServers": {"a": {}}}"#, "needs a `command`"),
            (r#"{"mcpServers": {"a": {"command": "x", "url": "http://h"}}}"#, "both"),
            (r#"{"mcpServers": {"a": {"url": "http://h/sse", "type": "sse"}}}"#, "SSE"),
            (r#"{"mcpServers": {"a": {"url": "ftp://h"}}}"#, "not http"),
            (r#"{"mcpServers": {"a.b": {"command": "x"}, "a_b": {"command": "y"}}}"#, "another server's"),
            (r#"{"mcpServers": {"a": {"command": "x", "args": "not a list"}}}"#, "server `a`"),
            (r#"{"servers": {}}"#, "no `mcpServers`"),
            ("[1", "not JSON"),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
