//! `tool inspect FILE.wasm`: a component's tools, schemas and imports.

use super::Failure;
use super::remote::SourceArgs;
use super::sandbox_args::SandboxArgs;
use clap::Args;
use serde_json::{Value, json};
use toolmesh_host::sandbox::ToolDescriptor;

/// Arguments of `tool inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The component: a `.wasm` file, or a registry reference (`ns/name:version`, `ns/name@sha256:…`).
    file: String,
    /// Print `{"digest", "tools", "imports", "capabilities", "requests"}` as JSON.
    #[arg(long)]
    json: bool,
    /// The tool's `tool.toml` (its requested permissions) for a file
    /// [default: tool.toml beside it, if any].
    #[arg(long, value_name = "FILE")]
    manifest: Option<std::path::PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    source: SourceArgs,
}

pub async fn run(args: InspectArgs) -> Result<(), Failure> {
    let mut source = args.source.read(&args.file, args.manifest.as_deref()).await?;
    let (sandbox, component) = args.sandbox.load(&source.bytes, &args.file, true, None)?;
    // The request as it is published (or was, for a registry reference):
    // with the GPU its imports need.
    toolmesh_host::grant::settle_gpu_for(&mut source.request, &component, &source.bytes);
    let tools = sandbox.describe(&component).await?;
    if args.json {
        let out = json!({
            "digest": component.digest().to_string(),
            "world": if component.is_plain() { "plain" } else { "toolmesh" },
            "tools": tools,
            "imports": component.imports(),
            "capabilities": component.capabilities(),
            "requests": source.request.as_written(),
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    outln!("component {}", component.digest());
    if component.is_plain() {
        outln!("a component of its own world: each exported function is a tool, described from its WIT");
    }
    outln!("\ntools ({}):", tools.len());
    for tool in &tools {
        print_tool(tool)?;
    }
    outln!("\nimports ({}):", component.imports().len());
    for import in component.imports() {
        outln!("  {import}");
    }
    outln!("\ncapabilities: {}", component.capabilities().join(", "));
    let requests = source.request.describe();
    if requests.is_empty() {
        outln!("requests: nothing beyond log and progress");
    } else {
        outln!("requests:");
        for line in requests {
            outln!("  {line}");
        }
    }
    Ok(())
}

fn print_tool(tool: &ToolDescriptor) -> Result<(), Failure> {
    let a = &tool.annotations;
    let hints: Vec<&str> = [
        (a.read_only, "read-only"),
        (a.idempotent, "idempotent"),
        (a.destructive, "destructive"),
        (a.open_world, "open-world"),
    ]
    .into_iter()
    .filter_map(|(set, name)| (set == Some(true)).then_some(name))
    .collect();
    let hints = if hints.is_empty() { String::new() } else { format!("  [{}]", hints.join(", ")) };
    outln!("\n  {}{hints}", tool.name);
    outln!("    {}", tool.description);
    print_properties("input", &tool.input_schema)?;
    if let Some(schema) = &tool.output_schema {
        print_properties("output", schema)?;
    }
    Ok(())
}

/// One line per top-level property: name, type, required, description.
fn print_properties(label: &str, schema: &Value) -> Result<(), Failure> {
    let required: Vec<&str> = schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(properties) = schema["properties"].as_object().filter(|p| !p.is_empty()) else {
        outln!("    {label}: (no fields)");
        return Ok(());
    };
    outln!("    {label}:");
    for (name, property) in properties {
        let kind = type_of(property);
        let req = if required.contains(&name.as_str()) { ", required" } else { "" };
        let desc = property["description"].as_str().map(|d| format!(" — {d}")).unwrap_or_default();
        outln!("      {name} ({kind}{req}){desc}");
    }
    Ok(())
}

fn type_of(property: &Value) -> String {
    match &property["type"] {
        Value::String(t) if t == "array" && property.get("prefixItems").is_some() => "tuple".into(),
        Value::String(t) if t == "array" => format!("array of {}", type_of(&property["items"])),
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ if property.get("enum").is_some() => "enum".into(),
        _ if property.get("const").is_some() => format!("{}", property["const"]),
        _ => match property.get("anyOf").or_else(|| property.get("oneOf")).and_then(Value::as_array) {
            // One of several shapes (a WIT option, variant or result): each, in short.
            Some(shapes) if shapes.len() <= 4 => shapes.iter().map(type_of).collect::<Vec<_>>().join(" | "),
            Some(_) => "one of several shapes".into(),
            None if property.get("$ref").is_some() => "object".into(),
            None => "any".into(),
        },
    }
}
