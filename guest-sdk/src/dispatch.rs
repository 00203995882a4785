//! The bridge between the exported `handler` interface and a [`ToolSet`].

use crate::bindings::exports::toolmesh::tool::handler::Guest;
use crate::bindings::toolmesh::tool::types::ToolDescriptor;
use crate::{Content, ToolError, ToolSet};
use std::marker::PhantomData;

/// The exported component for the tool set `T`.
pub struct Component<T>(PhantomData<T>);

impl<T: ToolSet> Guest for Component<T> {
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

    fn call(name: String, arguments: String) -> Result<Vec<Content>, ToolError> {
        match T::tools().into_iter().find(|tool| tool.name == name) {
            Some(tool) => tool.call(&arguments),
            None => Err(ToolError::invalid_arguments(format_args!("unknown tool `{name}`"))),
        }
    }
}
