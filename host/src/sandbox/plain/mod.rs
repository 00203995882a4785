//! Components of any world: a component that does not export
//! `toolmesh:tool/handler` is described from its WIT, one tool per
//! exported function (free functions of its world and functions of the
//! interfaces it exports), and called through component values made from
//! the JSON arguments.
//!
//! Tool names join the interface and the function, with WIT's dashes as
//! underscores: `get-current-time` of `wasi:clocks/time` is
//! `time.get_current_time`, a free function `add` is `add`. When two
//! exported interfaces share a name, both are qualified by their package
//! (`acme_clock.time.now`). Descriptions and field docs come from the
//! component's `package-docs` section when it has one ([`docs`]), else
//! from the signature. Schemas and the JSON form of values: [`schema`].

mod call;
pub(crate) mod docs;
pub(crate) mod schema;
pub(crate) mod value;

use super::content::{Annotations, Content, ToolDescriptor, is_valid_tool_name};
use super::error::SandboxError;
use docs::Docs;
use schema::{Direction, SchemaBuilder, type_name};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use wasmtime::Engine;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, Val};

/// The most functions a component may offer as tools.
pub const MAX_FUNCTIONS: usize = 1000;

/// The tools of a plain component and how to call each.
#[derive(Debug)]
pub(crate) struct PlainExports {
    functions: BTreeMap<String, PlainFunction>,
}

/// One exported function, as a tool.
#[derive(Debug)]
pub(crate) struct PlainFunction {
    /// Where it is exported: `test:plain/values@0.1.0#echo`, or `add`.
    export: String,
    index: ComponentExportIndex,
    params: Vec<(String, Type)>,
    result: Option<Type>,
    descriptor: ToolDescriptor,
}

/// A function found among the exports, before it is named.
struct Found {
    instance: Option<String>,
    name: String,
    index: ComponentExportIndex,
    ty: ComponentFunc,
}

impl PlainExports {
    /// Describes the exported functions of `component`, with the docs in
    /// the component's bytes when given. Refuses a component that exports
    /// no function, one whose functions use types with no JSON form
    /// (naming the function and type), and names that cannot be told apart.
    pub(crate) fn discover(engine: &Engine, component: &Component, docs: &Docs) -> Result<Self, SandboxError> {
        let refuse = |why: String| SandboxError::InvalidComponent(why);
        let mut found = Vec::new();
        for (name, export) in component.component_type().exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(ty) => {
                    let index = component
                        .get_export_index(None, name)
                        .ok_or_else(|| refuse(format!("export `{name}` cannot be found")))?;
                    found.push(Found { instance: None, name: name.to_owned(), index, ty });
                }
                ComponentItem::ComponentInstance(instance_ty) => {
                    let instance = component.get_export_index(None, name);
                    for (func_name, item) in instance_ty.exports(engine) {
                        let ComponentItem::ComponentFunc(ty) = item.ty else { continue };
                        let index = component
                            .get_export_index(instance.as_ref(), func_name)
                            .ok_or_else(|| refuse(format!("export `{name}#{func_name}` cannot be found")))?;
                        found.push(Found { instance: Some(name.to_owned()), name: func_name.to_owned(), index, ty });
                        if found.len() > MAX_FUNCTIONS {
                            return Err(refuse(format!("it exports more than {MAX_FUNCTIONS} functions")));
                        }
                    }
                }
                _ => {}
            }
            if found.len() > MAX_FUNCTIONS {
                return Err(refuse(format!("it exports more than {MAX_FUNCTIONS} functions")));
            }
        }
        if found.is_empty() {
            return Err(refuse(
                "it exports neither `toolmesh:tool/handler` nor any function to offer as a tool \
                 (build it with toolmesh-guest, or export plain functions from its world)"
                    .into(),
            ));
        }
        let names = tool_names(&found)?;
        let mut functions = BTreeMap::new();
        for (found, tool) in found.into_iter().zip(names) {
            let function = describe(found, tool.clone(), docs)?;
            functions.insert(tool, function);
        }
        Ok(PlainExports { functions })
    }

    /// The descriptors of its tools, by name.
    pub(crate) fn descriptors(&self) -> Vec<ToolDescriptor> {
        self.functions.values().map(|f| f.descriptor.clone()).collect()
    }

    /// The function behind tool `tool`.
    pub(crate) fn function(&self, tool: &str) -> Result<&PlainFunction, SandboxError> {
        self.functions.get(tool).ok_or_else(|| {
            let known: Vec<&str> = self.functions.keys().map(String::as_str).take(20).collect();
            SandboxError::InvalidArguments(format!("no tool `{tool}` in this component (it has {})", known.join(", ")))
        })
    }
}

impl PlainFunction {
    /// The export to call.
    pub(crate) fn index(&self) -> &ComponentExportIndex {
        &self.index
    }

    /// How many results the function returns (0 or 1).
    pub(crate) fn result_count(&self) -> usize {
        usize::from(self.result.is_some())
    }

    /// The parameters read from the JSON `arguments` (an object), taking
    /// at most `memory` bytes of host memory.
    pub(crate) fn arguments(&self, arguments: &str, memory: u64) -> Result<Vec<Val>, SandboxError> {
        let invalid = SandboxError::InvalidArguments;
        if arguments.len() as u64 > memory {
            return Err(invalid(format!(
                "the arguments ({}) are larger than the call's memory limit ({})",
                super::humanize_bytes(arguments.len() as u64),
                super::humanize_bytes(memory)
            )));
        }
        let json: Value = match arguments.trim() {
            "" => Value::Object(Default::default()),
            text => serde_json::from_str(text).map_err(|e| invalid(format!("the arguments are not JSON: {e}")))?,
        };
        let Value::Object(object) = json else {
            return Err(invalid("the arguments must be a JSON object".into()));
        };
        let values = value::Reader::new(memory).fields(&self.params, &object, "").map_err(invalid)?;
        Ok(values.into_iter().map(|(_, v)| v).collect())
    }

    /// The call's result as content: a string as text, `result`'s `err` as
    /// a failure showing the error value, anything else as structured
    /// content `{"result": …}`.
    pub(crate) fn content(&self, results: &[Val], limit: u64) -> Result<Vec<Content>, SandboxError> {
        let (Some(ty), Some(val)) = (&self.result, results.first()) else { return Ok(Vec::new()) };
        let (ty, val) = match (ty, val) {
            (Type::Result(result), Val::Result(outcome)) => match outcome {
                Ok(None) => return Ok(Vec::new()),
                Ok(Some(ok)) => match result.ok() {
                    Some(ty) => (ty, &**ok),
                    None => return Ok(Vec::new()),
                },
                Err(err) => {
                    let message = match (result.err(), err) {
                        (Some(Type::String), Some(e)) if let Val::String(s) = &**e => s.clone(),
                        (Some(ty), Some(e)) => value::write(&ty, e).to_string(),
                        _ => format!("`{}` returned an error", self.export),
                    };
                    check_size(message.len(), limit)?;
                    return Err(SandboxError::ToolFailed(message));
                }
            },
            _ => (ty.clone(), val),
        };
        let content = match (&ty, val) {
            (Type::String, Val::String(s)) => Content::Text(s.clone()),
            _ => Content::Json(json!({"result": value::write(&ty, val)})),
        };
        check_size(content.byte_len() as usize, limit)?;
        Ok(vec![content])
    }
}

fn check_size(size: usize, limit: u64) -> Result<(), SandboxError> {
    if size as u64 > limit {
        return Err(SandboxError::OutputTooLarge { size: size as u64, limit });
    }
    Ok(())
}

/// The short name of an exported interface: `values` of
/// `test:plain/values@0.1.0`, or the name itself for a world's own.
fn short_name(instance: &str) -> &str {
    let name = instance.rsplit_once('/').map_or(instance, |(_, name)| name);
    name.split_once('@').map_or(name, |(name, _)| name)
}

/// The package of an exported interface, as a name part: `test_plain`.
fn package_part(instance: &str) -> Option<String> {
    let (package, _) = instance.split_once('/')?;
    Some(package.replace([':', '-', '.'], "_"))
}

fn snake(name: &str) -> String {
    name.replace('-', "_")
}

/// The tool name of each function: `interface.function`, qualified by
/// package where interfaces share a name.
fn tool_names(found: &[Found]) -> Result<Vec<String>, SandboxError> {
    let plain = |f: &Found| match &f.instance {
        Some(instance) => format!("{}.{}", snake(short_name(instance)), snake(&f.name)),
        None => snake(&f.name),
    };
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in found {
        *counts.entry(plain(f)).or_default() += 1;
    }
    let names: Vec<String> = found
        .iter()
        .map(|f| {
            let name = plain(f);
            match (&f.instance, counts[&name]) {
                (Some(instance), 2..) => match package_part(instance) {
                    Some(package) => format!("{package}.{name}"),
                    None => name,
                },
                _ => name,
            }
        })
        .collect();
    let mut seen: BTreeMap<&str, &Found> = BTreeMap::new();
    for (name, f) in names.iter().zip(found) {
        if !is_valid_tool_name(name) {
            return Err(SandboxError::InvalidComponent(format!(
                "function `{}` would be tool `{name}`, which is not 1-64 characters of [A-Za-z0-9_.-]",
                export_name(f)
            )));
        }
        if let Some(other) = seen.insert(name, f) {
            return Err(SandboxError::InvalidComponent(format!(
                "functions `{}` and `{}` would both be tool `{name}`",
                export_name(other),
                export_name(f)
            )));
        }
    }
    Ok(names)
}

fn export_name(f: &Found) -> String {
    match &f.instance {
        Some(instance) => format!("{instance}#{}", f.name),
        None => f.name.clone(),
    }
}

/// The tool of one function: its schemas and description.
fn describe(found: Found, tool: String, docs: &Docs) -> Result<PlainFunction, SandboxError> {
    let export = export_name(&found);
    let refuse = |why: String| SandboxError::InvalidComponent(format!("function `{export}`: {why}"));
    if found.ty.async_() {
        return Err(refuse("async functions are not supported".into()));
    }
    let params: Vec<(String, Type)> = found.ty.params().map(|(name, ty)| (name.to_owned(), ty)).collect();
    let result = found.ty.results().next();
    let interface = found.instance.as_deref().map(short_name);
    let interface_docs = interface.and_then(|i| docs.interface(i));
    let unsupported = |what: &str, ty: &Type, why: String| {
        format!("function `{export}`: {what} has type `{}`, which a tool cannot take or return: {why}", type_name(ty))
    };
    let input_schema = SchemaBuilder::new(Direction::Input, interface_docs)
        .object(params.iter().map(|(n, t)| (n.as_str(), t.clone())), 0, &|name, ty, why| {
            unsupported(&format!("parameter `{name}`"), ty, why)
        })
        .map_err(SandboxError::InvalidComponent)?;
    // The output schema is `T`'s for `result<T, E>` (whose `E` must have a
    // JSON form too), else the result's; none for a string (text).
    let (shown, error) = match &result {
        Some(Type::Result(r)) => (r.ok(), r.err()),
        other => (other.clone(), None),
    };
    let mut output = SchemaBuilder::new(Direction::Output, interface_docs);
    let mut result_schema = |ty: &Type| {
        output.schema(ty).map_err(|why| {
            SandboxError::InvalidComponent(unsupported("its result", result.as_ref().unwrap_or(ty), why))
        })
    };
    if let Some(ty) = &error {
        result_schema(ty)?;
    }
    let output_schema = match &shown {
        None => None,
        Some(ty) => {
            let schema = result_schema(ty)?;
            (*ty != Type::String)
                .then(|| json!({"type": "object", "properties": {"result": schema}, "required": ["result"]}))
        }
    };
    let mut description = match docs.function(interface, &found.name) {
        Some(text) => text.trim().to_owned(),
        None => signature(&found, &params, result.as_ref()),
    };
    if let (Some(interface), Some(text)) = (interface, interface_docs.and_then(|d| d.text())) {
        description.push_str(&format!("\n\nPart of `{interface}`: {}", text.trim()));
    }
    let descriptor =
        ToolDescriptor { name: tool, description, input_schema, output_schema, annotations: Annotations::default() };
    Ok(PlainFunction { export, index: found.index, params, result, descriptor })
}

/// A function's WIT signature, the description of an undocumented tool.
fn signature(found: &Found, params: &[(String, Type)], result: Option<&Type>) -> String {
    let params: Vec<String> = params.iter().map(|(n, t)| format!("{n}: {}", type_name(t))).collect();
    let result = result.map(|t| format!(" -> {}", type_name(t))).unwrap_or_default();
    let from = found.instance.as_deref().map(|i| format!(" (exported by `{i}`)")).unwrap_or_default();
    format!("{}: func({}){result}{from}", found.name, params.join(", "))
}
