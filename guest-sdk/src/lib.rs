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

mod dispatch;
pub mod gpu;
pub mod host;
#[cfg(feature = "http")]
pub mod http;
mod output;
mod tool;
pub mod tools;

pub use output::{Image, IntoOutput, Json, Output};
pub use tool::{Tool, ToolSet};

/// Generated bindings of the `toolmesh:tool/gpu-tool` world (the `tool`
/// world and the GPU interface; only what a tool calls is imported). Tool
/// authors rarely need them directly; [`export_tools!`] wires them up.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "gpu-tool",
        pub_export_macro: true,
        export_macro_name: "__export_handler",
        default_bindings_module: "toolmesh_guest::bindings",
        additional_derives: [PartialEq],
        additional_derives_ignore: ["binding"],
    });
}

/// One item of a tool's result: text, JSON (structured content) or an image.
pub use bindings::toolmesh::tool::types::Content;
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
    pub use crate::{Content, Image, Json, Output, Tool, ToolError};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Re-exports used by [`export_tools!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::dispatch::Component;
}

/// Exports the tools returned by a function `fn() -> Vec<Tool>` as this
/// component's `toolmesh:tool/handler`. Use it once per crate.
#[macro_export]
macro_rules! export_tools {
    ($tools:path) => {
        struct __ToolmeshTools;
        impl $crate::ToolSet for __ToolmeshTools {
            fn tools() -> ::std::vec::Vec<$crate::Tool> {
                $tools()
            }
        }
        type __ToolmeshComponent = $crate::__private::Component<__ToolmeshTools>;
        $crate::bindings::__export_handler!(__ToolmeshComponent with_types_in $crate::bindings);
    };
}
