//! Host-side view of what tools describe and return, checked on the way in:
//! names valid, schemas and JSON parsed, output within its cap.

use super::bindings::toolmesh::tool::mcp_types::Item;
use super::bindings::toolmesh::tool::types as wit;
use super::error::SandboxError;
use super::offer::{self, Body, ResourceContents, ResourceInfo};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
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
    /// Encoded audio.
    Audio {
        /// The encoded bytes.
        data: Vec<u8>,
        /// Their media type.
        mime_type: String,
    },
    /// A resource's contents, embedded.
    Resource(ResourceContents),
    /// A link to a resource.
    ResourceLink(ResourceInfo),
    /// Structured content alone: the result's `structuredContent`, with no
    /// content block of its own (a bridged server's result, whose blocks
    /// already say it in their own words).
    Structured(Value),
}

impl Content {
    /// Its size in bytes, for metering: the text, the JSON as written, the
    /// image's encoded bytes.
    pub fn byte_len(&self) -> u64 {
        match self {
            Content::Text(text) => text.len() as u64,
            Content::Json(value) | Content::Structured(value) => {
                let mut counter = ByteCounter(0);
                let _ = serde_json::to_writer(&mut counter, value);
                counter.0
            }
            Content::Image { data, .. } | Content::Audio { data, .. } => data.len() as u64,
            Content::Resource(resource) => resource.byte_len(),
            Content::ResourceLink(link) => link.byte_len(),
        }
    }
}

/// The MCP content block of `item` (`{"type": "text", …}` and the like);
/// JSON items are text blocks holding the document.
pub fn mcp_block(item: &Content) -> Value {
    match item {
        Content::Text(text) => serde_json::json!({"type": "text", "text": text}),
        Content::Json(value) | Content::Structured(value) => {
            serde_json::json!({"type": "text", "text": value.to_string()})
        }
        Content::Image { data, mime_type } => {
            serde_json::json!({"type": "image", "data": BASE64.encode(data), "mimeType": mime_type})
        }
        Content::Audio { data, mime_type } => {
            serde_json::json!({"type": "audio", "data": BASE64.encode(data), "mimeType": mime_type})
        }
        Content::Resource(resource) => serde_json::json!({"type": "resource", "resource": resource_json(resource)}),
        Content::ResourceLink(link) => {
            let mut block = serde_json::to_value(link).unwrap_or_default();
            block["type"] = "resource_link".into();
            block
        }
    }
}

/// A resource's contents as MCP writes them: `uri`, `mimeType`, and
/// `text` or `blob` (base64).
pub fn resource_json(resource: &ResourceContents) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("uri".into(), resource.uri.clone().into());
    if let Some(mime) = &resource.mime_type {
        out.insert("mimeType".into(), mime.clone().into());
    }
    match &resource.body {
        Body::Text(text) => out.insert("text".into(), text.clone().into()),
        Body::Blob(bytes) => out.insert("blob".into(), BASE64.encode(bytes).into()),
    };
    Value::Object(out)
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

/// The items of a result of the `handler` export, which knows only text,
/// JSON and images.
pub(crate) fn items(raw: Vec<wit::Content>) -> Vec<Item> {
    raw.into_iter()
        .map(|c| match c {
            wit::Content::Text(t) => Item::Text(t),
            wit::Content::Json(t) => Item::Json(t),
            wit::Content::Image(i) => Item::Image(i),
        })
        .collect()
}

/// The bytes an item costs against the output limit.
fn item_size(item: &Item) -> u64 {
    let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    (match item {
        Item::Text(t) | Item::Json(t) => t.len(),
        Item::Image(i) => i.data.len() + i.mime_type.len(),
        Item::Audio(a) => a.data.len() + a.mime_type.len(),
        Item::Resource(r) => {
            r.uri.len()
                + optional(&r.mime_type)
                + match &r.body {
                    super::bindings::toolmesh::tool::mcp_types::Body::Text(t) => t.len(),
                    super::bindings::toolmesh::tool::mcp_types::Body::Blob(b) => b.len(),
                }
        }
        Item::ResourceLink(l) => {
            l.uri.len() + l.name.len() + optional(&l.title) + optional(&l.description) + optional(&l.mime_type)
        }
    }) as u64
}

/// Checks that `mime` is a media type of `kind` (`image`, `audio`) and
/// lowercases it.
fn media_type(i: usize, mime: &str, kind: &str) -> Result<String, SandboxError> {
    let mime = mime.to_ascii_lowercase();
    if !mime.starts_with(&format!("{kind}/")) || mime.len() > 100 {
        return Err(SandboxError::InvalidOutput(format!(
            "content item {i} has media type {mime:?}, not an {kind} type"
        )));
    }
    Ok(mime)
}

/// Checks the size of a guest's result against `limit`, then converts it.
pub(crate) fn contents(raw: Vec<Item>, limit: u64) -> Result<Vec<Content>, SandboxError> {
    let size: u64 = raw.iter().map(item_size).sum::<u64>()
        // Each item costs something even when empty, so a million empty
        // items cannot slip under the cap.
        + 16 * raw.len() as u64;
    if size > limit {
        return Err(SandboxError::OutputTooLarge { size, limit });
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            Item::Text(t) => Ok(Content::Text(t)),
            Item::Json(t) => serde_json::from_str(&t)
                .map(Content::Json)
                .map_err(|e| SandboxError::InvalidOutput(format!("content item {i} is not valid JSON: {e}"))),
            Item::Image(img) => {
                Ok(Content::Image { mime_type: media_type(i, &img.mime_type, "image")?, data: img.data })
            }
            Item::Audio(a) => Ok(Content::Audio { mime_type: media_type(i, &a.mime_type, "audio")?, data: a.data }),
            Item::Resource(r) => offer::resource_contents(r).map(Content::Resource),
            Item::ResourceLink(l) => offer::resource_info(l).map(Content::ResourceLink),
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
        let big = vec![Item::Text("x".repeat(100))];
        assert!(matches!(contents(big, 50), Err(SandboxError::OutputTooLarge { size: 116, limit: 50 })));
        let audio = vec![Item::Audio(super::super::bindings::toolmesh::tool::mcp_types::Audio {
            data: vec![0; 100],
            mime_type: "audio/wav".into(),
        })];
        assert!(matches!(contents(audio, 100), Err(SandboxError::OutputTooLarge { size: 125, limit: 100 })));
        let many = vec![Item::Text(String::new()); 10];
        assert!(matches!(contents(many, 100), Err(SandboxError::OutputTooLarge { .. })));
    }

    #[test]
    fn bad_json_and_non_image_media_types_are_invalid_output() {
        let bad = vec![Item::Json("{".into())];
        assert!(matches!(contents(bad, 1000), Err(SandboxError::InvalidOutput(_))));
        let html = vec![Item::Image(wit::Image { data: vec![1], mime_type: "text/html".into() })];
        assert!(matches!(contents(html, 1000), Err(SandboxError::InvalidOutput(_))));
        let relative = vec![Item::ResourceLink(super::super::bindings::toolmesh::tool::mcp_types::ResourceInfo {
            uri: "no-scheme".into(),
            name: "x".into(),
            title: None,
            description: None,
            mime_type: None,
            size: None,
        })];
        assert!(matches!(contents(relative, 1000), Err(SandboxError::InvalidOutput(_))));
    }

    #[test]
    fn items_become_mcp_blocks() {
        let link = ResourceInfo {
            uri: "test://a".into(),
            name: "a".into(),
            title: None,
            description: Some("d".into()),
            mime_type: None,
            size: Some(3),
        };
        assert_eq!(
            mcp_block(&Content::ResourceLink(link)),
            serde_json::json!({"type": "resource_link", "uri": "test://a", "name": "a", "description": "d", "size": 3})
        );
        let blob = ResourceContents { uri: "test://b".into(), mime_type: None, body: Body::Blob(vec![1, 2]) };
        assert_eq!(
            mcp_block(&Content::Resource(blob)),
            serde_json::json!({"type": "resource", "resource": {"uri": "test://b", "blob": "AQI="}})
        );
        assert_eq!(
            mcp_block(&Content::Audio { data: vec![1, 2], mime_type: "audio/wav".into() }),
            serde_json::json!({"type": "audio", "data": "AQI=", "mimeType": "audio/wav"})
        );
    }
}
