//! `tool build`: builds the tool in a directory into a component beside
//! its `tool.toml`, and describes it.

use super::Failure;
use super::tool_toml::ToolToml;
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use toolmesh_host::build::Project;
use toolmesh_host::config::SandboxConfig;
use toolmesh_host::sandbox::Sandbox;

/// `tool build` arguments.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The tool's directory (Cargo.toml for Rust, app.py for Python, app.js for JavaScript).
    #[arg(default_value = ".")]
    dir: PathBuf,
}

/// Where the project's toolchains are installed.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TOOLMESH_CACHE")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("toolmesh")))
        .unwrap_or_else(|| std::env::temp_dir().join("toolmesh-cache"))
}

pub async fn run(args: BuildArgs) -> Result<(), Failure> {
    let started = Instant::now();
    // `tool.toml` in the directory, if there.
    let manifest = ToolToml::read(None, &args.dir.join("tool.toml"))?;
    let uses_network = !manifest.permissions.network.is_empty();
    let project = Project::open(&args.dir, manifest.name.as_deref(), uses_network).map_err(Failure::usage)?;
    let cache = cache_dir();
    let say = |what: &str| eprintln!("  {what} …");
    let project_ref = &project;
    let out = tokio::task::block_in_place(|| project_ref.build(&cache, &say)).map_err(Failure::failed)?;
    let bytes = std::fs::read(&out).map_err(Failure::failed)?;
    // Compiled into the compile cache `tool run` and `tool publish` use, so
    // publishing what was just built describes it without compiling again.
    let config = SandboxConfig { cache_dir: super::sandbox_args::default_compile_cache(), ..SandboxConfig::default() };
    let sandbox = Sandbox::new(config).map_err(Failure::failed)?;
    let component = tokio::task::block_in_place(|| sandbox.load(&bytes))
        .map_err(|e| Failure::failed(anyhow::anyhow!("{} was built but cannot be loaded: {e}", out.display())))?;
    let tools = sandbox.describe(&component).await.map_err(|e| {
        Failure::failed(anyhow::anyhow!("{} was built but cannot describe its tools: {e}", out.display()))
    })?;
    if tools.is_empty() {
        return Err(Failure::failed(anyhow::anyhow!(
            "{} defines no tool (Python: @tool on a function; JavaScript: tool({{…}}, handler))",
            out.display()
        )));
    }
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    eprintln!(
        "built {} ({} KB) in {:.1} s: {} tool{} ({})",
        out.display(),
        bytes.len() / 1024,
        started.elapsed().as_secs_f64(),
        tools.len(),
        if tools.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    outln!("{}", out.display());
    Ok(())
}
