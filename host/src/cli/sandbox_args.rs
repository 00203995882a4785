//! Flags shared by the verbs that run components: configuration file,
//! limits and cache, merged as file < flags.

use super::Failure;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use toolmesh_host::config::{SandboxConfig, parse_duration, parse_size};
use toolmesh_host::grant::Policy;
use toolmesh_host::sandbox::{Sandbox, ToolComponent};

/// Sandbox options on the command line.
#[derive(Args, Debug)]
pub struct SandboxArgs {
    /// Sandbox configuration file (TOML); flags override it.
    #[arg(long, env = "TOOLMESH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Wall-clock limit of the call, such as `500ms` or `10s` [default: 10s].
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Memory limit of the call, such as `64MiB` [default: 256MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    memory: Option<u64>,
    /// Largest result the call may return, such as `4MiB` [default: 1MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    max_output: Option<u64>,
    /// Memory all running calls may reserve together, such as `8GiB`
    /// [default: three quarters of the machine's memory].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    memory_budget: Option<u64>,
    /// Compiled code kept loaded in memory, all components together, such
    /// as `1GiB` [default: 512MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    loaded_code: Option<u64>,
    /// Compile every time instead of using the compile cache.
    #[arg(long)]
    no_cache: bool,
    /// What this node grants tools (TOML: network, scratch, secrets,
    /// limits, publishers) [default: nothing beyond log and progress].
    #[arg(long, env = "TOOLMESH_POLICY", value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Grant GPU compute to tools that request it (as `[gpu] allow = true`
    /// in the policy), on the best GPU adapter found at start.
    #[arg(long)]
    gpu: bool,
    /// Sessions (instances kept between the calls of a code tool's
    /// session) the node holds at once, all callers together; 0 turns
    /// sessions off [default: 16].
    #[arg(long, value_name = "N")]
    sessions: Option<u32>,
    /// Sessions one caller holds on the node at once [default: 4].
    #[arg(long, value_name = "N")]
    sessions_per_caller: Option<u32>,
    /// How long a session is kept without a call, such as `10m`
    /// [default: 10m].
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    session_ttl: Option<Duration>,
}

/// The GPU a node offers, in one line for its start-up banner; `None`
/// when its policy grants no GPU compute.
pub fn gpu_status(sandbox: &Sandbox, policy: &Policy) -> Option<String> {
    if !policy.gpu {
        return None;
    }
    Some(match sandbox.gpu() {
        Some(gpu) => format!("GPU compute on {} ({}, {})", gpu.name, gpu.kind, gpu.backend),
        None => format!("GPU compute granted, but {}", sandbox.gpu_unavailable().unwrap_or("no adapter")),
    })
}

pub fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

pub fn parse_size_arg(text: &str) -> Result<u64, String> {
    parse_size(text).map_err(|e| e.to_string())
}

impl SandboxArgs {
    /// The configuration: defaults, then the file, then the flags; with
    /// GPU compute opened when `policy` (read once by the caller) grants it.
    /// `None` for commands that only describe components. Compiled code is
    /// cached in the user's cache directory unless the file names another
    /// (or `--no-cache`).
    pub fn config(&self, policy: Option<&Policy>) -> Result<SandboxConfig, Failure> {
        self.config_caching_in(policy, default_compile_cache)
    }

    /// As [`SandboxArgs::config`], with `default_cache` the compile cache
    /// when the file names none.
    pub fn config_caching_in(
        &self,
        policy: Option<&Policy>,
        default_cache: impl FnOnce() -> Option<PathBuf>,
    ) -> Result<SandboxConfig, Failure> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(Failure::usage)?;
                SandboxConfig::from_toml(&text)
                    .with_context(|| format!("in {}", path.display()))
                    .map_err(Failure::usage)?
            }
            None => SandboxConfig::default(),
        };
        if let Some(timeout) = self.timeout {
            config.limits.timeout = timeout;
        }
        if let Some(memory) = self.memory {
            config.limits.memory = memory;
        }
        if let Some(bytes) = self.loaded_code {
            config.loaded_code = bytes;
        }
        if let Some(output) = self.max_output {
            config.limits.output = output;
        }
        if let Some(budget) = self.memory_budget {
            config.memory_budget = Some(budget);
        }
        if let Some(max) = self.sessions {
            config.sessions.max = max;
        }
        if let Some(per_caller) = self.sessions_per_caller {
            config.sessions.per_caller = per_caller;
        }
        if let Some(ttl) = self.session_ttl {
            config.sessions.idle_ttl = ttl;
        }
        if let Some(policy) = policy.filter(|p| p.gpu) {
            config.gpu = Some(policy.gpu_limits.clone());
        }
        if self.no_cache {
            config.cache_dir = None;
        } else if config.cache_dir.is_none() {
            config.cache_dir = default_cache();
        }
        Ok(config)
    }

    /// How long sessions are kept without a call (a gateway forgets their
    /// homes after as long).
    pub fn session_ttl(&self) -> Duration {
        self.session_ttl.unwrap_or_else(|| toolmesh_host::config::SessionLimits::default().idle_ttl)
    }

    /// The configuration for a command that makes one call at a time
    /// (`run`, `inspect`, `publish`): the pool is kept small. `policy` as
    /// for [`SandboxArgs::config`].
    pub fn one_shot_sandbox(&self, policy: Option<&Policy>) -> Result<Sandbox, Failure> {
        let mut config = self.config(policy)?;
        config.max_concurrent_calls = config.max_concurrent_calls.min(4);
        Ok(Sandbox::new(config)?)
    }

    /// The node's policy: the file given, or the built-in one.
    pub fn policy(&self) -> Result<Policy, Failure> {
        let mut policy = match &self.policy {
            Some(path) => Policy::load(path).map_err(Failure::usage)?,
            None => Policy::builtin(),
        };
        policy.gpu |= self.gpu;
        Ok(policy)
    }

    /// Whether `--gpu` was given.
    pub fn gpu(&self) -> bool {
        self.gpu
    }

    /// Builds the sandbox and loads the component `bytes` (`label` names
    /// them in errors). With a compile cache the optimised code is compiled
    /// once and kept for later runs; without one (`--no-cache`), or when
    /// `quick` says the component runs once (`inspect`), the baseline
    /// compiler starts it several times sooner.
    pub fn load(
        &self,
        bytes: &[u8],
        label: &str,
        quick: bool,
        policy: Option<&Policy>,
    ) -> Result<(Sandbox, ToolComponent), Failure> {
        let sandbox = self.one_shot_sandbox(policy)?;
        let component = if quick || self.no_cache { sandbox.load_quick(bytes) } else { sandbox.load(bytes) };
        let component = component.with_context(|| format!("cannot load {label}"))?;
        Ok((sandbox, component))
    }
}

/// Where the CLI keeps compiled code unless told otherwise: the user's
/// cache directory (`tool build` fills it, `tool run` and `tool publish`
/// read it).
pub fn default_compile_cache() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("toolmesh").join("compiled"))
}
