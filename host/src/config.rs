//! Typed configuration of the sandbox role, loadable from TOML.
//!
//! Every default denies or caps: a tool gets clocks and random numbers,
//! nothing else, within the limits below.

use serde::{Deserialize, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// Per-call resource limits. Each one stops a hostile tool with its own error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time a call may take, host calls included (`"10s"`).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Linear memory a call may use, all memories together (`"256MiB"`).
    #[serde(deserialize_with = "de_size")]
    pub memory: u64,
    /// Bytes a call's result may hold, all content items together (`"1MiB"`).
    #[serde(deserialize_with = "de_size")]
    pub output: u64,
    /// Bytes of log lines, stdout and stderr kept per call; the rest is
    /// dropped and counted (`"64KiB"`).
    #[serde(deserialize_with = "de_size")]
    pub log: u64,
    /// Elements a call's tables may hold in all.
    pub table_elements: u32,
    /// Core instances a component may create.
    pub instances: u32,
    /// Tables a component may create.
    pub tables: u32,
    /// Linear memories a component may create.
    pub memories: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory: 256 << 20,
            output: 1 << 20,
            log: 64 << 10,
            table_elements: 100_000,
            instances: 32,
            tables: 16,
            memories: 2,
        }
    }
}

/// How instance memory is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Allocator {
    /// Pre-reserved slots reused across calls: fastest instantiation, and a
    /// hard bound on concurrent calls.
    #[default]
    Pooling,
    /// Memory mapped per instance on demand.
    OnDemand,
}

/// Configuration of a sandbox: the engine, its compile cache, and the
/// limits every call runs under.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Default limits of each call; a call may lower them, and raise them only
    /// up to the engine's maxima (`memory` here is also the engine's maximum).
    pub limits: Limits,
    /// Most calls running at once; further calls wait for a slot.
    pub max_concurrent_calls: u32,
    /// Deepest wasm stack a call may use, in bytes (`"8MiB"`). Interpreters
    /// built as components (QuickJS, CPython) keep their own recursion
    /// limits well inside it, so deep recursion is an ordinary exception.
    #[serde(deserialize_with = "de_size")]
    pub max_wasm_stack: u64,
    /// How instance memory is allocated.
    pub allocator: Allocator,
    /// Directory for compiled code, keyed by component digest and engine
    /// compatibility; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Memory all running calls may reserve together (`"8GiB"`); each call
    /// reserves the most it may use (its memory limit, the host's copies of
    /// its output, its stacks) before it starts. `None`: three quarters of
    /// the machine's (or the cgroup's) memory.
    #[serde(deserialize_with = "de_opt_size")]
    pub memory_budget: Option<u64>,
    /// How long a call waits for a slot and its share of the memory budget
    /// before it is refused as "node busy" (`"2s"`).
    #[serde(deserialize_with = "de_duration")]
    pub queue_timeout: Duration,
    /// Compiled code kept loaded in memory, all components together
    /// (`"512MiB"`); the least recently used are dropped past it.
    #[serde(deserialize_with = "de_size")]
    pub loaded_code: u64,
    /// GPU compute offered to calls granted it, under these budgets; `None`
    /// opens no GPU. Set from the node's policy (`[gpu]`), not this file.
    #[serde(skip)]
    pub gpu: Option<crate::capability::gpu::GpuLimits>,
    /// How many sessions (live instances kept between calls) the node
    /// holds, and for how long.
    pub sessions: SessionLimits,
    /// Host linear algebra offered to every call (`[linalg]`).
    pub linalg: LinalgConfig,
}

/// Host linear algebra (`toolmesh:tool/linalg`): whether calls may use
/// it, on how many threads, and the bounds of each call and of the weights
/// the node keeps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinalgConfig {
    /// Whether calls may use it; without it they compute in wasm.
    pub enabled: bool,
    /// Threads operations run on (0: one per core).
    pub threads: u32,
    /// Bytes of one call's live matrices and unfinished uploads (`"512MiB"`).
    #[serde(deserialize_with = "de_size")]
    pub max_call_bytes: u64,
    /// Floating-point operations of one operation.
    pub max_op_flops: u64,
    /// Floating-point operations of all operations of one call.
    pub max_call_flops: u64,
    /// Bytes of one upload of weights (`"512MiB"`).
    #[serde(deserialize_with = "de_size")]
    pub max_weights_bytes: u64,
    /// Bytes of weights the node keeps for components, all together
    /// (`"1GiB"`); the least recently used go first. Also counted in the
    /// memory budget.
    #[serde(deserialize_with = "de_size")]
    pub weights_memory: u64,
}

impl Default for LinalgConfig {
    fn default() -> Self {
        LinalgConfig {
            enabled: true,
            threads: 0,
            max_call_bytes: 512 << 20,
            max_op_flops: 1 << 38,
            max_call_flops: 1 << 42,
            max_weights_bytes: 512 << 20,
            weights_memory: 1 << 30,
        }
    }
}

/// Bounds on the sessions one node holds: each keeps an instance alive
/// between calls, with its memory reserved from the node's budget.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionLimits {
    /// Sessions the node holds at once, all callers together (0: none).
    pub max: u32,
    /// Sessions one caller holds on the node at once.
    pub per_caller: u32,
    /// How long a session is kept without a call (`"10m"`).
    #[serde(deserialize_with = "de_duration")]
    pub idle_ttl: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits { max: 16, per_caller: 4, idle_ttl: Duration::from_secs(600) }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            max_concurrent_calls: 64,
            max_wasm_stack: 8 << 20,
            allocator: Allocator::Pooling,
            cache_dir: None,
            memory_budget: None,
            queue_timeout: Duration::from_secs(2),
            loaded_code: 512 << 20,
            gpu: None,
            sessions: SessionLimits::default(),
            linalg: LinalgConfig::default(),
        }
    }
}

/// A configuration value that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl SandboxConfig {
    /// Parses a `[sandbox]`-shaped TOML document; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError(format!("invalid sandbox configuration: {}", toml_error(text, &e))))
    }
}

/// A TOML parse error of `text` on one line: where, then what.
pub fn toml_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message().trim())
        }
        None => error.message().trim().to_owned(),
    }
}

/// Parses a duration such as `250ms`, `10s`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| ConfigError(format!("`{text}` is not a duration (try `500ms`, `10s`, `2m`)")))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(ConfigError(format!("unknown duration unit `{other}` in `{text}`"))),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| ConfigError(format!("`{text}` is out of range")))
}

/// Parses a size such as `512KiB`, `256MiB`, `1GiB`, `10MB` or a bare number of bytes.
pub fn parse_size(text: &str) -> Result<u64, ConfigError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: u64 =
        number.parse().map_err(|_| ConfigError(format!("`{text}` is not a size (try `64KiB`, `256MiB`)")))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(ConfigError(format!("unknown size unit `{other}` in `{text}`"))),
    };
    value.checked_mul(factor).ok_or_else(|| ConfigError(format!("`{text}` is out of range")))
}

/// Accepts a string with a unit or a plain number.
#[derive(Deserialize)]
#[serde(untagged)]
enum TextOrNumber {
    Text(String),
    Number(u64),
}

pub(crate) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        TextOrNumber::Number(n) => Ok(Duration::from_secs(n)),
    }
}

pub(crate) fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(t) => parse_size(&t).map_err(serde::de::Error::custom),
        TextOrNumber::Number(n) => Ok(n),
    }
}

pub(crate) fn de_opt_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    de_size(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn toml_overrides_defaults_and_rejects_unknown_keys() {
        let c = SandboxConfig::from_toml(
            "allocator = \"on-demand\"\nmemory_budget = \"2GiB\"\n[limits]\ntimeout = \"2s\"\nmemory = \"64MiB\"\noutput = 4096\n",
        )
        .unwrap();
        assert_eq!(c.allocator, Allocator::OnDemand);
        assert_eq!(c.memory_budget, Some(2 << 30));
        assert_eq!(c.limits.timeout, Duration::from_secs(2));
        assert_eq!(c.limits.memory, 64 << 20);
        assert_eq!(c.limits.output, 4096);
        assert_eq!(c.limits.log, Limits::default().log);
        let err = SandboxConfig::from_toml("[limits]\ntimeuot = \"2s\"\n").unwrap_err();
        assert!(err.to_string().contains("timeuot"), "{err}");
    }
}
