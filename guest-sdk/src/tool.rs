//! Declaring tools: a name, a description, a typed handler and hints.

use crate::bindings::toolmesh::tool::types::Annotations;
use crate::output::IntoOutput;
use crate::{Content, ToolError};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

type Handler = Box<dyn Fn(&str) -> Result<Vec<Content>, ToolError>>;

/// One tool of a component: what it is called, what it does, and the
/// function that runs it.
pub struct Tool {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) annotations: Annotations,
    pub(crate) input_schema: fn() -> Value,
    pub(crate) raw_input_schema: Option<Value>,
    pub(crate) output_schema: fn() -> Option<Value>,
    pub(crate) raw_output_schema: Option<Value>,
    pub(crate) task: Option<TaskSupport>,
    pub(crate) handler: Handler,
}

/// Whether a tool runs as a task (MCP's tasks extension): the client gets a
/// task id at once and polls for the result, for calls that take long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSupport {
    /// With a client that can poll, calls run as tasks.
    Optional,
    /// Calls always run as tasks; clients that cannot poll cannot call it.
    /// Questions it asks at its start are asked before the task begins.
    Required,
}

/// The tools, resources and prompts a component exports; implemented by
/// [`crate::export_tools!`].
pub trait ToolSet {
    /// Every tool of the component.
    fn tools() -> Vec<Tool>;

    /// Its resources and resource templates.
    fn resources() -> Vec<crate::Resource> {
        Vec::new()
    }

    /// Its prompts.
    fn prompts() -> Vec<crate::Prompt> {
        Vec::new()
    }
}

impl Tool {
    /// Declares a tool named `name` (1–64 of `[A-Za-z0-9_.-]`) whose arguments
    /// are `A` and whose work is `run`.
    ///
    /// The input schema is derived from `A`; the output schema from `O` when
    /// `O` has a fixed JSON shape (see [`crate::Json`]).
    pub fn new<A, O, F>(name: &str, description: &str, run: F) -> Self
    where
        A: DeserializeOwned + JsonSchema + 'static,
        O: IntoOutput,
        F: Fn(A) -> Result<O, ToolError> + 'static,
    {
        Tool {
            name: name.to_owned(),
            description: description.to_owned(),
            annotations: Annotations {
                title: None,
                read_only: None,
                destructive: None,
                idempotent: None,
                open_world: None,
            },
            input_schema: || schemars::schema_for!(A).to_value(),
            raw_input_schema: None,
            output_schema: O::output_schema,
            raw_output_schema: None,
            task: None,
            handler: Box::new(move |json| run(parse_arguments::<A>(json)?)?.into_output()),
        }
    }

    /// Sets a human-readable title.
    pub fn title(mut self, title: &str) -> Self {
        self.annotations.title = Some(title.to_owned());
        self
    }

    /// Hints that the tool does not modify its environment.
    pub fn read_only(mut self) -> Self {
        self.annotations.read_only = Some(true);
        self
    }

    /// Hints that repeating a call with the same arguments has no further effect.
    pub fn idempotent(mut self) -> Self {
        self.annotations.idempotent = Some(true);
        self
    }

    /// Hints that the tool may destroy data.
    pub fn destructive(mut self) -> Self {
        self.annotations.destructive = Some(true);
        self
    }

    /// Hints that the tool talks to an open world (the network, say).
    pub fn open_world(mut self) -> Self {
        self.annotations.open_world = Some(true);
        self
    }

    /// Runs calls as tasks (see [`TaskSupport`]).
    pub fn as_task(mut self, support: TaskSupport) -> Self {
        self.task = Some(support);
        self
    }

    /// Publishes `schema` as the input schema instead of the one derived from
    /// the argument type, for schemas a Rust type cannot express
    /// (`if`/`then`/`else`, `$anchor`, …). The argument type should then be
    /// loose enough to accept every valid input, such as
    /// `serde_json::Map<String, Value>`.
    pub fn input_schema_json(mut self, schema: Value) -> Self {
        self.raw_input_schema = Some(schema);
        self
    }

    /// Publishes `schema` as the output schema instead of the one derived
    /// from the result type.
    pub fn output_schema_json(mut self, schema: Value) -> Self {
        self.raw_output_schema = Some(schema);
        self
    }

    /// The JSON Schema of the tool's structured result, if it has one.
    pub fn output_schema(&self) -> Option<Value> {
        self.raw_output_schema.clone().or_else(|| (self.output_schema)())
    }

    /// The tool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the tool on JSON arguments, as the host would.
    pub fn call(&self, arguments: &str) -> Result<Vec<Content>, ToolError> {
        (self.handler)(arguments)
    }

    /// The JSON Schema of the tool's arguments.
    pub fn input_schema(&self) -> Value {
        let mut schema = self.raw_input_schema.clone().unwrap_or_else(|| (self.input_schema)());
        if let (Some(task), Some(object)) = (self.task, schema.as_object_mut()) {
            let support = match task {
                TaskSupport::Optional => "optional",
                TaskSupport::Required => "required",
            };
            object.insert("x-toolmesh-task".into(), support.into());
        }
        schema
    }
}

/// Parses `json` as `A`; errors name the path of the offending field.
fn parse_arguments<A: DeserializeOwned>(json: &str) -> Result<A, ToolError> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let parsed: A = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ToolError::invalid_arguments(inner)
        } else {
            ToolError::invalid_arguments(format_args!("field `{path}`: {inner}"))
        }
    })?;
    de.end().map_err(|e| ToolError::invalid_arguments(format_args!("trailing data after the arguments: {e}")))?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    struct Args {
        name: String,
        size: Size,
    }

    #[derive(Deserialize, JsonSchema)]
    struct Size {
        width: u32,
    }

    fn tool() -> Tool {
        Tool::new("t", "test", |a: Args| Ok(format!("{} {}", a.name, a.size.width)))
    }

    #[test]
    fn parses_valid_arguments() {
        let out = tool().call(r#"{"name":"x","size":{"width":3}}"#).unwrap();
        assert_eq!(out, vec![Content::Text("x 3".into())]);
    }

    #[test]
    fn names_the_missing_field() {
        let err = tool().call(r#"{"size":{"width":3}}"#).unwrap_err();
        let ToolError::InvalidArguments(msg) = err else { panic!("wrong variant") };
        assert!(msg.contains("missing field `name`"), "{msg}");
    }

    #[test]
    fn names_the_nested_field_of_the_wrong_type() {
        let err = tool().call(r#"{"name":"x","size":{"width":"wide"}}"#).unwrap_err();
        let ToolError::InvalidArguments(msg) = err else { panic!("wrong variant") };
        assert!(msg.starts_with("field `size.width`"), "{msg}");
    }

    #[test]
    fn rejects_text_that_is_not_json() {
        let err = tool().call("not json").unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(_)));
    }

    #[test]
    fn derives_an_object_schema_with_required_fields() {
        let schema = tool().input_schema();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], serde_json::json!(["name", "size"]));
    }
}
