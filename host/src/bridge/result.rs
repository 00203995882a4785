//! A bridged server's `tools/call` answer as the node's call result: its
//! content items, its structured content, its error flag, within the
//! node's output limit.

use super::server::BridgeCallError;
use crate::sandbox::{Body, Content, ResourceContents, ResourceInfo};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rmcp::model::{CallToolResult, GetPromptResult, ReadResourceResult};
use serde_json::Value;

/// The content of `result`, or the failure it reports; at most `limit`
/// bytes in all.
pub(super) fn content_of(result: CallToolResult, limit: u64) -> Result<Vec<Content>, BridgeCallError> {
    let blocks: Vec<Value> = result.content.iter().filter_map(|block| serde_json::to_value(block).ok()).collect();
    if result.is_error == Some(true) {
        let text: Vec<&str> = blocks.iter().filter_map(|b| b["text"].as_str()).collect();
        let message = if text.is_empty() { "the tool failed".to_owned() } else { text.join("\n") };
        let message: String = message.chars().take(4096).collect();
        return Err(BridgeCallError::ToolFailed(message));
    }
    let structured = result.structured_content.filter(Value::is_object);
    let mut content = Vec::with_capacity(blocks.len() + 1);
    let mut placed = false;
    for block in blocks {
        // The text copy of the structured content becomes the structured
        // item itself (the gateway writes its text copy again).
        if let (Some(value), false, Some(text)) = (&structured, placed, block["text"].as_str())
            && serde_json::from_str::<Value>(text).ok().as_ref() == Some(value)
        {
            content.push(Content::Json(value.clone()));
            placed = true;
            continue;
        }
        content.push(item(block)?);
    }
    if let (Some(value), false) = (structured, placed) {
        // The server's blocks stand as written; the document goes alone.
        content.push(Content::Structured(value));
    }
    within(content, limit)
}

/// The contents of a resource read, each a resource item; at most
/// `limit` bytes in all.
pub(super) fn resource_content(read: ReadResourceResult, limit: u64) -> Result<Vec<Content>, BridgeCallError> {
    let mut content = Vec::with_capacity(read.contents.len());
    for contents in &read.contents {
        let block = serde_json::json!({"type": "resource", "resource": contents});
        content.push(item(block)?);
    }
    within(content, limit)
}

/// A filled-in prompt as one JSON item (the MCP `GetPromptResult`).
pub(super) fn prompt_content(prompt: GetPromptResult, limit: u64) -> Result<Vec<Content>, BridgeCallError> {
    let value = serde_json::to_value(prompt).map_err(|e| BridgeCallError::Failed(e.to_string()))?;
    within(vec![Content::Json(value)], limit)
}

/// `content`, if it is at most `limit` bytes.
fn within(content: Vec<Content>, limit: u64) -> Result<Vec<Content>, BridgeCallError> {
    let bytes: u64 = content.iter().map(Content::byte_len).sum();
    if bytes > limit { Err(BridgeCallError::TooLarge(bytes)) } else { Ok(content) }
}

/// One MCP content block as a content item.
fn item(block: Value) -> Result<Content, BridgeCallError> {
    let bad = |why: &str| BridgeCallError::Failed(format!("the bridged server's result has a bad item: {why}"));
    let text = |key: &str| block[key].as_str().map(str::to_owned);
    let bytes = |key: &str| BASE64.decode(block[key].as_str().unwrap_or_default()).map_err(|_| bad("not base64"));
    Ok(match block["type"].as_str() {
        Some("text") => Content::Text(text("text").unwrap_or_default()),
        Some("image") => Content::Image { data: bytes("data")?, mime_type: text("mimeType").unwrap_or_default() },
        Some("audio") => Content::Audio { data: bytes("data")?, mime_type: text("mimeType").unwrap_or_default() },
        Some("resource") => {
            let resource = &block["resource"];
            let body = match (resource["text"].as_str(), resource["blob"].as_str()) {
                (Some(text), None) => Body::Text(text.to_owned()),
                (None, Some(blob)) => Body::Blob(BASE64.decode(blob).map_err(|_| bad("not base64"))?),
                _ => return Err(bad("a resource needs one of `text` and `blob`")),
            };
            let uri = resource["uri"].as_str().ok_or_else(|| bad("a resource without a uri"))?.to_owned();
            Content::Resource(ResourceContents {
                uri,
                mime_type: resource["mimeType"].as_str().map(str::to_owned),
                body,
            })
        }
        Some("resource_link") => {
            Content::ResourceLink(serde_json::from_value::<ResourceInfo>(block).map_err(|e| bad(&e.to_string()))?)
        }
        other => return Err(bad(&format!("unknown type {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(value: Value) -> CallToolResult {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn items_structured_content_and_errors_carry_over() {
        let answer = result(json!({
            "content": [
                {"type": "text", "text": "{\"a\":1}"},
                {"type": "image", "data": "AAEC", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///x", "text": "hi"}},
                {"type": "resource_link", "uri": "file:///y", "name": "y"}
            ],
            "structuredContent": {"a": 1}
        }));
        let content = content_of(answer, 1 << 20).unwrap();
        assert_eq!(content[0], Content::Json(json!({"a": 1})), "the text copy became the structured item");
        assert_eq!(content[1], Content::Image { data: vec![0, 1, 2], mime_type: "image/png".into() });
        assert!(
            matches!(&content[2], Content::Resource(r) if r.uri == "file:///x" && r.body == Body::Text("hi".into()))
        );
        assert!(matches!(&content[3], Content::ResourceLink(l) if l.name == "y"));
        assert_eq!(content.len(), 4);

        let only_structured = result(json!({"content": [], "structuredContent": {"b": 2}}));
        assert_eq!(content_of(only_structured, 1 << 20).unwrap(), vec![Content::Structured(json!({"b": 2}))]);
        let failed = result(json!({"content": [{"type": "text", "text": "no such zone"}], "isError": true}));
        assert_eq!(content_of(failed, 1 << 20).unwrap_err(), BridgeCallError::ToolFailed("no such zone".into()));
        let large = result(json!({"content": [{"type": "text", "text": "x".repeat(2000)}]}));
        assert_eq!(content_of(large, 1000).unwrap_err(), BridgeCallError::TooLarge(2000));
        let bad = result(json!({"content": [{"type": "image", "data": "!!", "mimeType": "image/png"}]}));
        assert!(matches!(content_of(bad, 1 << 20), Err(BridgeCallError::Failed(_))));
    }
}
