//! The bridge between the exported `handler` and `server` interfaces and
//! a [`ToolSet`].

use crate::bindings::exports::toolmesh::tool::{handler, server};
use crate::bindings::toolmesh::tool::mcp_types::{Offer, OfferError, PromptResult, ResourceContents};
use crate::bindings::toolmesh::tool::types::{self, ToolDescriptor};
use crate::{Content, PromptArgs, ToolError, ToolSet, offer};
use std::marker::PhantomData;

/// The exported component for the tool set `T`.
pub struct Component<T>(PhantomData<T>);

impl<T: ToolSet> Component<T> {
    fn run(name: &str, arguments: &str) -> Result<Vec<Content>, ToolError> {
        match T::tools().into_iter().find(|tool| tool.name == name) {
            Some(tool) => tool.call(arguments),
            None => Err(ToolError::invalid_arguments(format_args!("unknown tool `{name}`"))),
        }
    }
}

impl<T: ToolSet> handler::Guest for Component<T> {
    fn describe() -> Vec<ToolDescriptor> {
        T::tools()
            .into_iter()
            .map(|tool| ToolDescriptor {
                input_schema: tool.input_schema().to_string(),
                output_schema: tool.output_schema().map(|schema| schema.to_string()),
                name: tool.name,
                description: tool.description,
                annotations: tool.annotations,
            })
            .collect()
    }

    /// For hosts that predate `server`: what they cannot carry (audio,
    /// resources, links) becomes text saying what it was.
    fn call(name: String, arguments: String) -> Result<Vec<types::Content>, ToolError> {
        Ok(Self::run(&name, &arguments)?.into_iter().map(older).collect())
    }
}

/// `item` as the `handler` interface carries it.
fn older(item: Content) -> types::Content {
    use crate::bindings::toolmesh::tool::mcp_types::Body;
    match item {
        Content::Text(text) => types::Content::Text(text),
        Content::Json(json) => types::Content::Json(json),
        Content::Image(image) => types::Content::Image(image),
        Content::Audio(audio) => {
            types::Content::Text(format!("[{} audio, {} bytes]", audio.mime_type, audio.data.len()))
        }
        Content::Resource(ResourceContents { uri, body: Body::Text(text), .. }) => {
            types::Content::Text(format!("[{uri}]\n{text}"))
        }
        Content::Resource(ResourceContents { uri, body: Body::Blob(bytes), .. }) => {
            types::Content::Text(format!("[{uri}: {} bytes]", bytes.len()))
        }
        Content::ResourceLink(link) => types::Content::Text(format!("[link: {}]", link.uri)),
    }
}

impl<T: ToolSet> server::Guest for Component<T> {
    fn call(name: String, arguments: String) -> Result<Vec<Content>, ToolError> {
        Self::run(&name, &arguments)
    }

    fn describe_offer() -> Offer {
        offer::describe(&T::resources(), &T::prompts())
    }

    fn read(
        uri: String,
        template: Option<String>,
        variables: Vec<(String, String)>,
    ) -> Result<Vec<ResourceContents>, OfferError> {
        offer::read(&T::resources(), uri, template, variables)
    }

    fn get_prompt(name: String, arguments: Vec<(String, String)>) -> Result<PromptResult, OfferError> {
        match T::prompts().into_iter().find(|prompt| prompt.name() == name) {
            Some(prompt) => prompt.get(&PromptArgs(arguments)),
            None => Err(OfferError::NotFound(format!("no prompt `{name}`"))),
        }
    }
}
