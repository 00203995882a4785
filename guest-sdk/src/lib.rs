//! Write toolmesh tools in Rust.
//!
//! A tool is a typed argument struct (deserialised with serde, described with
//! a schemars-derived JSON Schema) and a function. This crate does the rest:
//! the WebAssembly component glue, argument parsing with errors that name
//! the offending field, and conversion of results into MCP-shaped content.
//!
//! ```ignore
//! use toolmesh_guest::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Greet {
//!     /// Who to greet.
//!     name: String,
//! }
//!
//! fn greet(args: Greet) -> Result<String, ToolError> {
//!     Ok(format!("Hello, {}!", args.name))
//! }
//!
//! fn tools() -> Vec<Tool> {
//!     vec![Tool::new("greet", "Greets someone by name.", greet).read_only()]
//! }
//!
//! toolmesh_guest::export_tools!(tools);
//! ```
//!
//! Build it with `cargo build --target wasm32-wasip2 --release`; the `.wasm`
//! file under `target/wasm32-wasip2/release/` is the component.
#![deny(missing_docs)]

pub mod ask;
mod dispatch;
pub mod gpu;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
pub mod linalg;
pub mod offer;
mod output;
mod tool;
pub mod tools;

pub use offer::{Contents, Message, OfferError, Prompt, PromptArgs, Read, Resource};
pub use output::{Audio, Image, IntoOutput, Json, Output};
pub use tool::{TaskSupport, Tool, ToolSet};

/// Generated bindings of the `toolmesh:tool/mcp-tool` world (the `tool`
/// world, the GPU interface, calls to tools, and the `server` export; only
/// what a tool calls is imported). Tool
/// authors rarely need them directly; [`export_tools!`] wires them up.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "mcp-tool",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "toolmesh_guest::bindings",
        additional_derives: [PartialEq],
        additional_derives_ignore: ["binding", "dense"],
    });
}

/// One item of a tool's result or a prompt's message: text, JSON
/// (structured content), an image, audio, an embedded resource or a link.
pub use bindings::toolmesh::tool::mcp_types::Item as Content;
/// Why a call failed: bad arguments, or a failure while running.
pub use bindings::toolmesh::tool::types::ToolError;

impl ToolError {
    /// The arguments do not fit the tool; `message` should name the field.
    pub fn invalid_arguments(message: impl std::fmt::Display) -> Self {
        ToolError::InvalidArguments(message.to_string())
    }

    /// The tool ran but could not do its job.
    pub fn failed(message: impl std::fmt::Display) -> Self {
        ToolError::Failed(message.to_string())
    }
}

/// The items a tool author usually needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Audio, Content, Contents, Image, Json, Message, OfferError, Output, Prompt, Resource, Tool, ToolError,
    };
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Re-exports used by [`export_tools!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::Component;
}

/// Exports the tools returned by a function `fn() -> Vec<Tool>` as this
/// component's `toolmesh:tool/handler` and `toolmesh:tool/server`, with
/// resources (`fn() -> Vec<Resource>`) and prompts (`fn() -> Vec<Prompt>`)
/// when given. Use it once per crate:
///
/// ```ignore
/// toolmesh_guest::export_tools!(tools);
/// toolmesh_guest::export_tools!(tools, resources = resources, prompts = prompts);
/// ```
#[macro_export]
macro_rules! export_tools {
    ($tools:path) => {
        $crate::export_tools!(@set $tools, ::std::vec::Vec::new(), ::std::vec::Vec::new());
    };
    ($tools:path, resources = $resources:path) => {
        $crate::export_tools!(@set $tools, $resources(), ::std::vec::Vec::new());
    };
    ($tools:path, prompts = $prompts:path) => {
        $crate::export_tools!(@set $tools, ::std::vec::Vec::new(), $prompts());
    };
    ($tools:path, resources = $resources:path, prompts = $prompts:path) => {
        $crate::export_tools!(@set $tools, $resources(), $prompts());
    };
    (@set $tools:path, $resources:expr, $prompts:expr) => {
        struct __ToolmeshTools;
        impl $crate::ToolSet for __ToolmeshTools {
            fn tools() -> ::std::vec::Vec<$crate::Tool> {
                $tools()
            }
            fn resources() -> ::std::vec::Vec<$crate::Resource> {
                $resources
            }
            fn prompts() -> ::std::vec::Vec<$crate::Prompt> {
                $prompts
            }
        }
        type __ToolmeshComponent = $crate::__private::Component<__ToolmeshTools>;
        $crate::bindings::__export_handler!(__ToolmeshComponent with_types_in $crate::bindings);
    };
}
