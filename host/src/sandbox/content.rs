//! Host-side view of what tools describe and return, checked on the way in:
//! names valid, schemas and JSON parsed, output within its cap.

use super::bindings::toolmesh::tool::types as wit;
use super::error::SandboxError;
use serde::Serialize;
use serde_json::Value;

/// MCP behaviour hints of a tool.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotations {
    /// Human-readable title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The tool does not modify its environment.
    #[serde(rename = "readOnlyHint", skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The tool may destroy data.
    #[serde(rename = "destructiveHint", skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    /// Repeating a call has no further effect.
    #[serde(rename = "idempotentHint", skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// The tool talks to an open world.
    #[serde(rename = "openWorldHint", skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

/// One tool a component offers, as the host understands it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolDescriptor {
    /// Unique within its component; 1–64 of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// What the tool does.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub input_schema: Value,
    /// JSON Schema of the structured result, if fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints.
    pub annotations: Annotations,
}

/// One item of a tool's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A JSON document (structured content).
    Json(Value),
    /// An encoded image.
    Image {
        /// The encoded bytes.
        data: Vec<u8>,
        /// Their media type.
        mime_type: String,
    },
}

impl Content {
    /// Its size in bytes, for metering: the text, the JSON as written, the
    /// image's encoded bytes.
    pub fn byte_len(&self) -> u64 {
        match self {
            Content::Text(text) => text.len() as u64,
            Content::Json(value) => {
                let mut counter = ByteCounter(0);
                let _ = serde_json::to_writer(&mut counter, value);
                counter.0
            }
            Content::Image { data, .. } => data.len() as u64,
        }
    }
}

/// Counts what is written to it.
struct ByteCounter(u64);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len() as u64;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether `name` is a valid tool name within a component.
pub fn is_valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn parse_schema(tool: &str, which: &str, text: &str) -> Result<Value, SandboxError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| SandboxError::InvalidOutput(format!("tool `{tool}`: {which} schema is not JSON: {e}")))?;
    if value.get("type").and_then(Value::as_str) != Some("object") {
        return Err(SandboxError::InvalidOutput(format!(
            "tool `{tool}`: {which} schema must describe an object (`\"type\": \"object\"`)"
        )));
    }
    Ok(value)
}

/// Checks and converts the guest's `describe` answer.
pub(crate) fn descriptors(raw: Vec<wit::ToolDescriptor>) -> Result<Vec<ToolDescriptor>, SandboxError> {
    let mut seen = std::collections::HashSet::new();
    raw.into_iter()
        .map(|d| {
            if !is_valid_tool_name(&d.name) {
                return Err(SandboxError::InvalidOutput(format!(
                    "tool name {:?} is not 1-64 characters of [A-Za-z0-9_.-]",
                    d.name
                )));
            }
            if !seen.insert(d.name.clone()) {
                return Err(SandboxError::InvalidOutput(format!("tool `{}` is described twice", d.name)));
            }
            Ok(ToolDescriptor {
                input_schema: parse_schema(&d.name, "input", &d.input_schema)?,
                output_schema: d.output_schema.as_deref().map(|s| parse_schema(&d.name, "output", s)).transpose()?,
                annotations: Annotations {
                    title: d.annotations.title,
                    read_only: d.annotations.read_only,
                    destructive: d.annotations.destructive,
                    idempotent: d.annotations.idempotent,
                    open_world: d.annotations.open_world,
                },
                name: d.name,
                description: d.description,
            })
        })
        .collect()
}

/// Checks the size of a guest's result against `limit`, then converts it.
pub(crate) fn contents(raw: Vec<wit::Content>, limit: u64) -> Result<Vec<Content>, SandboxError> {
    let size: u64 = raw
        .iter()
        .map(|c| match c {
            wit::Content::Text(t) | wit::Content::Json(t) => t.len() as u64,
            wit::Content::Image(i) => (i.data.len() + i.mime_type.len()) as u64,
        })
        .sum::<u64>()
        // Each item costs something even when empty, so a million empty
        // items cannot slip under the cap.
        + 16 * raw.len() as u64;
    if size > limit {
        return Err(SandboxError::OutputTooLarge { size, limit });
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            wit::Content::Text(t) => Ok(Content::Text(t)),
            wit::Content::Json(t) => serde_json::from_str(&t)
                .map(Content::Json)
                .map_err(|e| SandboxError::InvalidOutput(format!("content item {i} is not valid JSON: {e}"))),
            wit::Content::Image(img) => {
                let mime = img.mime_type.to_ascii_lowercase();
                if !mime.starts_with("image/") || mime.len() > 100 {
                    return Err(SandboxError::InvalidOutput(format!(
                        "content item {i} has media type {:?}, not an image type",
                        img.mime_type
                    )));
                }
                Ok(Content::Image { data: img.data, mime_type: mime })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_names() {
        assert!(is_valid_tool_name("regex_find"));
        assert!(is_valid_tool_name("a-b-9"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("has space"));
        assert!(is_valid_tool_name("time.get_current_time"));
        assert!(!is_valid_tool_name("slash/ed"));
        assert!(!is_valid_tool_name(&"x".repeat(65)));
    }

    #[test]
    fn output_cap_counts_every_item() {
        let big = vec![wit::Content::Text("x".repeat(100))];
        assert!(matches!(contents(big, 50), Err(SandboxError::OutputTooLarge { size: 116, limit: 50 })));
        let many = vec![wit::Content::Text(String::new()); 10];
        assert!(matches!(contents(many, 100), Err(SandboxError::OutputTooLarge { .. })));
    }

    #[test]
    fn bad_json_and_non_image_media_types_are_invalid_output() {
        let bad = vec![wit::Content::Json("{".into())];
        assert!(matches!(contents(bad, 1000), Err(SandboxError::InvalidOutput(_))));
        let html = vec![wit::Content::Image(wit::Image { data: vec![1], mime_type: "text/html".into() })];
        assert!(matches!(contents(html, 1000), Err(SandboxError::InvalidOutput(_))));
    }
}
