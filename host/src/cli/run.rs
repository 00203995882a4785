//! `tool run FILE.wasm TOOL --args JSON`: one call, its result printed.

use super::Failure;
use super::remote::SourceArgs;
use super::sandbox_args::SandboxArgs;
use anyhow::{Context, anyhow};
use clap::Args;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use toolmesh_host::gateway::mcp::{mcp_error_result, mcp_result, structured_content};
use toolmesh_host::gateway::schema::ToolSchemas;
use toolmesh_host::grant::settle_gpu_for;
use toolmesh_host::sandbox::{Body, CallOptions, Content, SandboxError};

/// Arguments of `tool run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The component: a `.wasm` file, or a registry reference (`ns/name:version`, `ns/name@sha256:…`).
    file: String,
    /// The tool to call (see `tool inspect`).
    tool: String,
    /// The arguments: a JSON object, `@FILE` to read it from a file, or `-` for stdin.
    #[arg(long, short, default_value = "{}", value_name = "JSON")]
    args: String,
    /// Print the MCP-shaped result (`{"content": [...], "structuredContent", "isError"}`).
    #[arg(long)]
    json: bool,
    /// Write image results into this directory instead of summarising them.
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The tool's `tool.toml` (its requested permissions) for a file
    /// [default: tool.toml beside it, if any].
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    #[command(flatten)]
    sandbox: SandboxArgs,
    #[command(flatten)]
    source: SourceArgs,
}

pub async fn run(args: RunArgs) -> Result<(), Failure> {
    let arguments = read_arguments(&args.args)?;
    let mut source = args.source.read(&args.file, args.manifest.as_deref()).await?;
    let policy = args.sandbox.policy()?;
    let (sandbox, component) = args.sandbox.load(&source.bytes, &args.file, false, Some(&policy))?;
    // A tool that imports the GPU interface needs GPU compute unless it
    // runs without (its tool.toml or the component says so); the policy
    // must cover the request before anything runs.
    settle_gpu_for(&mut source.request, &component, &source.bytes);
    let grant = policy.grant(&source.request).map_err(|e| Failure::failed(anyhow!("{e}")))?;
    let tools = sandbox.describe(&component).await?;
    let Some(descriptor) = tools.iter().find(|t| t.name == args.tool) else {
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        return Err(Failure::usage(anyhow!(
            "no tool `{}` in {}; it offers: {}",
            args.tool,
            args.file,
            names.join(", ")
        )));
    };
    // The same checks the gateway makes: the published schemas, enforced.
    let schemas = ToolSchemas::compile(&descriptor.input_schema, descriptor.output_schema.as_ref())
        .map_err(|e| anyhow!("tool `{}` cannot be called: {e}", args.tool))?;
    let parsed: Value = serde_json::from_str(&arguments).context("the arguments are not JSON")?;
    if let Err(problem) = schemas.check_arguments(&parsed) {
        return Err(Failure::usage(anyhow!("invalid arguments for `{}`: {problem}", args.tool)));
    }
    let options = CallOptions {
        progress: Some(Arc::new(|p| {
            let total = p.total.map(|t| format!("/{t}")).unwrap_or_default();
            let message = p.message.map(|m| format!(" {m}")).unwrap_or_default();
            eprintln!("progress: {}{total}{message}", p.done);
        })),
        grant: Some(Arc::new(grant)),
        ..CallOptions::default()
    };
    let outcome = sandbox.call(&component, &args.tool, &arguments, options).await;
    match outcome {
        Ok(output) => match schemas.check_result(structured_content(&output)) {
            Err(problem) => Err(Failure::failed(report(&problem, true, args.json))),
            Ok(()) if args.json => {
                outln!("{}", serde_json::to_string_pretty(&mcp_result(output.into_content()))?);
                Ok(())
            }
            Ok(()) => print_content(&output, &args),
        },
        Err(error @ SandboxError::InvalidArguments(_)) => Err(Failure::usage(report(&error.to_string(), false, false))),
        Err(error) => Err(Failure::failed(report(&error.to_string(), error.is_tool_failure(), args.json))),
    }
}

/// The `--args` value as JSON object text.
fn read_arguments(spec: &str) -> Result<String, Failure> {
    let text = if spec == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the arguments from stdin")?;
        text
    } else if let Some(path) = spec.strip_prefix('@') {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the arguments from {path}"))
            .map_err(Failure::usage)?
    } else {
        spec.to_owned()
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(_)) => Ok(text),
        Ok(_) => Err(Failure::usage(anyhow!("--args must be a JSON object, like '{{\"name\": \"Ada\"}}'"))),
        Err(e) => Err(Failure::usage(anyhow!("--args is not valid JSON: {e}"))),
    }
}

fn print_content(content: &[Content], args: &RunArgs) -> Result<(), Failure> {
    for (index, item) in content.iter().enumerate() {
        match item {
            Content::Text(text) => outln!("{text}"),
            Content::Json(value) | Content::Structured(value) => outln!("{}", serde_json::to_string_pretty(value)?),
            Content::Image { data, mime_type } | Content::Audio { data, mime_type } => {
                save_or_describe(data, mime_type, index, args)?;
            }
            Content::Resource(resource) => match &resource.body {
                Body::Text(text) => outln!("[{}]\n{text}", resource.uri),
                Body::Blob(data) => {
                    let mime = resource.mime_type.as_deref().unwrap_or("application/octet-stream");
                    outln!("[{}]", resource.uri);
                    save_or_describe(data, mime, index, args)?;
                }
            },
            Content::ResourceLink(link) => match &link.description {
                Some(description) => outln!("[link: {} ({})] {description}", link.uri, link.name),
                None => outln!("[link: {} ({})]", link.uri, link.name),
            },
        }
    }
    Ok(())
}

/// Writes bytes of a result into `--out`, or says what they are.
fn save_or_describe(data: &[u8], mime_type: &str, index: usize, args: &RunArgs) -> Result<(), Failure> {
    match &args.out {
        Some(dir) => {
            let ext = mime_type.split_once('/').map_or("bin", |(_, sub)| sub).replace(['/', '+', '.'], "_");
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let path = dir.join(format!("{}-{index}.{ext}", args.tool));
            std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
            outln!("{}", path.display());
        }
        None => outln!("[{mime_type}, {} bytes; pass --out DIR to save it]", data.len()),
    }
    Ok(())
}

/// Turns a failed call into the CLI's error (its first line; the rest, a
/// backtrace, goes to the log), printing the MCP-shaped error result first
/// when `--json` asked for it and the tool is at fault.
fn report(text: &str, tool_failure: bool, json: bool) -> anyhow::Error {
    let (first, details) = text.split_once('\n').unwrap_or((text, ""));
    if !details.is_empty() {
        tracing::info!("{details}");
    }
    if json
        && tool_failure
        && let Ok(out) = serde_json::to_string_pretty(&mcp_error_result(text))
    {
        // The call failed either way; a closed stdout changes nothing.
        let _ = writeln!(std::io::stdout().lock(), "{out}");
    }
    anyhow!("{first}")
}
