//! Turning a tool function's return value into MCP-shaped content: text,
//! JSON, images, audio, embedded resources and links.

use crate::{Content, ToolError};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// A value a tool function may return.
pub trait IntoOutput {
    /// JSON Schema of the structured result, when the type has a fixed shape.
    fn output_schema() -> Option<Value> {
        None
    }

    /// Converts the value into content items.
    fn into_output(self) -> Result<Vec<Content>, ToolError>;
}

/// Plain text.
impl IntoOutput for String {
    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        Ok(vec![Content::Text(self)])
    }
}

/// Free-form JSON, returned as structured content without an output schema.
impl IntoOutput for Value {
    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        Ok(vec![Content::Json(self.to_string())])
    }
}

/// A typed JSON result: returned as structured content, and its type's JSON
/// Schema is published as the tool's output schema. `T` should serialise to
/// a JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct Json<T>(pub T);

impl<T: Serialize + JsonSchema> IntoOutput for Json<T> {
    fn output_schema() -> Option<Value> {
        Some(schemars::schema_for!(T).to_value())
    }

    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        let json = serde_json::to_string(&self.0)
            .map_err(|e| ToolError::failed(format_args!("cannot serialise the result: {e}")))?;
        Ok(vec![Content::Json(json)])
    }
}

/// An encoded image.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// The encoded bytes (PNG, JPEG, …).
    pub data: Vec<u8>,
    /// Their media type, such as `image/png`.
    pub mime_type: String,
}

impl From<Image> for Content {
    fn from(image: Image) -> Self {
        Content::Image(crate::bindings::toolmesh::tool::types::Image { data: image.data, mime_type: image.mime_type })
    }
}

impl IntoOutput for Image {
    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        Ok(vec![self.into()])
    }
}

/// Encoded audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// The encoded bytes (WAV, MP3, …).
    pub data: Vec<u8>,
    /// Their media type, such as `audio/wav`.
    pub mime_type: String,
}

impl From<Audio> for Content {
    fn from(audio: Audio) -> Self {
        Content::Audio(crate::bindings::toolmesh::tool::mcp_types::Audio {
            data: audio.data,
            mime_type: audio.mime_type,
        })
    }
}

impl IntoOutput for Audio {
    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        Ok(vec![self.into()])
    }
}

/// Several content items, built up one by one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output(pub Vec<Content>);

impl Output {
    /// An empty result.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a text item.
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.0.push(Content::Text(text.into()));
        self
    }

    /// Adds a JSON item (structured content).
    pub fn json(mut self, value: &impl Serialize) -> Result<Self, ToolError> {
        let json = serde_json::to_string(value)
            .map_err(|e| ToolError::failed(format_args!("cannot serialise the result: {e}")))?;
        self.0.push(Content::Json(json));
        Ok(self)
    }

    /// Adds an image item.
    pub fn image(mut self, image: Image) -> Self {
        self.0.push(image.into());
        self
    }

    /// Adds an audio item.
    pub fn audio(mut self, audio: Audio) -> Self {
        self.0.push(audio.into());
        self
    }

    /// Embeds `contents` as the resource at `uri`.
    pub fn resource(mut self, uri: &str, contents: crate::Contents) -> Self {
        self.0.push(contents.at(uri));
        self
    }

    /// Adds a link to `resource`, which the client may read.
    pub fn link(mut self, resource: &crate::Resource) -> Self {
        self.0.push(resource.link());
        self
    }

    /// Adds a raw content item, as is.
    pub fn content(mut self, content: Content) -> Self {
        self.0.push(content);
        self
    }
}

impl IntoOutput for Output {
    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        Ok(self.0)
    }
}
