//! Existing MCP servers brought into the mesh. A bridged server is a
//! native process, not a wasm component, so it runs in an OS sandbox
//! ([`sandbox`]): bubblewrap namespaces, a read-only host file system
//! without home directories or the host's `/tmp`, no network unless
//! granted, an unprivileged user, and memory, CPU and process limits.
//!
//! - [`config`]: the servers file (Claude Desktop's format).
//! - [`policy`]: what the node's policy lets bridged servers have.
//! - [`sandbox`]: the OS sandbox a server process runs in.
//! - [`proxy`], [`shim`]: the hosts a sandboxed server may reach, through
//!   the node.
//! - [`server`]: one server kept running, and calls to it.
//! - `lists`: what a server lists, bounded.
//! - `process`: a server's process, killed with what it started.
//! - [`listing`]: what gateways are told of each server.
//! - `result`: a server's answers as the node's call results.
//!
//! [`Bridges`] owns a node's servers: it starts them, stops them when
//! dropped, and runs the calls the node is sent for them.

pub mod config;
pub mod listing;
mod lists;
pub mod policy;
mod process;
pub mod proxy;
mod result;
pub mod sandbox;
pub mod server;
pub mod shim;

use crate::grant::Policy;
use crate::node::InvokeCause;
use crate::sandbox::{CallOutput, ProgressSink, offer};
use config::{Launch, ServerEntry};
use listing::{Isolation, ServerListing};
use sandbox::SandboxSpec;
use server::{BridgeCallError, Server, ServerPlan};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Fires (turns `true`) when the node stops.
pub(crate) type Stop = tokio::sync::watch::Receiver<bool>;

/// Waits for `stop` to fire (or its sender to go).
pub(crate) async fn fired(stop: &mut Stop) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// The first uid of servers' users when the node runs as root: one user
/// each, so one server's processes never count against another's limit.
const FIRST_UID: u32 = 61000;

/// How many uids servers' users are drawn from.
const UIDS: u32 = 3000;

/// The uid of server `name`: the same at every start (from its name), and
/// none other's among `taken`.
fn uid_for(name: &str, taken: &mut std::collections::BTreeSet<u32>) -> u32 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let mut uid = FIRST_UID + (hash % u64::from(UIDS)) as u32;
    while !taken.insert(uid) {
        uid = FIRST_UID + (uid - FIRST_UID + 1) % UIDS;
    }
    uid
}

/// Why a node cannot bridge its servers.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No OS sandbox can be made here and the operator did not opt out.
    #[error(
        "this node cannot sandbox bridged MCP servers: {0}. Install bubblewrap (Debian: apt-get install bubblewrap) \
         or, to run them as plain processes with all of this user's rights, set `unsandboxed = true` under \
         [bridges] in the node's policy"
    )]
    NoSandbox(sandbox::Unavailable),
    /// The proxy of a server granted hosts could not be made.
    #[error("cannot make the network proxy of bridged server `{0}`: {1}")]
    Proxy(String, std::io::Error),
}

/// What one call to a bridged server may take.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Wall-clock time.
    pub timeout: Duration,
    /// Bytes of the result, all content together.
    pub output: u64,
}

/// A node's bridged servers. Stops them all when dropped.
pub struct Bridges {
    servers: BTreeMap<String, Server>,
    stop: tokio::sync::watch::Sender<bool>,
    limits: CallLimits,
    changed: tokio::sync::watch::Sender<u64>,
    /// The servers' proxy sockets, removed with their directories when dropped.
    _sockets: Vec<proxy::ProxySocket>,
}

impl Bridges {
    /// Starts `entries` under `policy`'s `[bridges]` grants, each with a
    /// private directory under `dir`, with `hidden` (the node's data) out
    /// of their sight. Refuses when stdio servers are to run and no OS
    /// sandbox can be made, unless the policy opts out.
    pub fn start(
        entries: Vec<ServerEntry>,
        policy: &Policy,
        (dir, hidden): (&Path, Option<&Path>),
        limits: CallLimits,
    ) -> Result<Self, BridgeError> {
        let bridges = &policy.bridges;
        let any_stdio = entries.iter().any(|e| matches!(e.launch, Launch::Stdio { .. }));
        let sandboxed = match (any_stdio, sandbox::probe()) {
            (false, _) | (true, Ok(())) => true,
            (true, Err(why)) if bridges.unsandboxed => {
                tracing::warn!(
                    "bridged servers run WITHOUT an OS sandbox ([bridges] unsandboxed = true): {why}; they can do what this node's user can"
                );
                false
            }
            (true, Err(why)) => return Err(BridgeError::NoSandbox(why)),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let changed = tokio::sync::watch::Sender::new(0);
        let mut servers = BTreeMap::new();
        let mut uids = std::collections::BTreeSet::new();
        let (mut sockets, proxy_slots) =
            (Vec::new(), Arc::new(tokio::sync::Semaphore::new(proxy::MAX_NODE_CONNECTIONS)));
        for entry in entries {
            let uid = uid_for(&entry.name, &mut uids);
            let mut plan = plan(entry, policy, dir, sandboxed, uid);
            if let Some(spec) = &mut plan.sandbox {
                // The other servers' directories, and the node's own data.
                spec.hidden = std::iter::once(dir).chain(hidden).map(Path::to_path_buf).collect();
                if let Some(targets) = &plan.proxy {
                    let owner = sandbox::running_as_root().then_some(uid);
                    let socket = proxy::serve(
                        plan.entry.name.clone(),
                        (owner, targets.clone()),
                        proxy_slots.clone(),
                        stopped.clone(),
                    )
                    .map_err(|e| BridgeError::Proxy(plan.entry.name.clone(), e))?;
                    spec.socket = Some(socket.path());
                    sockets.push(socket);
                }
            }
            let server = Server::start(plan, changed.clone(), stopped.clone());
            servers.insert(server.name().to_owned(), server);
        }
        Ok(Bridges { servers, stop, limits, changed, _sockets: sockets })
    }

    /// The servers that listed tools, for gateways.
    pub fn listings(&self) -> Vec<ServerListing> {
        self.servers.values().filter_map(Server::listing).collect()
    }

    /// A receiver that sees every change of [`Bridges::listings`].
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Runs `tool` of `server` with `arguments` (a JSON object as text).
    pub async fn call(
        &self,
        server: &str,
        tool: &str,
        arguments: &str,
        progress: Option<ProgressSink>,
    ) -> Result<CallOutput, InvokeCause> {
        let Some(bridged) = self.servers.get(server) else {
            return Err(failure("bridge_unavailable", format!("this node bridges no server `{server}`")));
        };
        let arguments = match serde_json::from_str(arguments) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(failure("invalid_arguments", "the arguments are not a JSON object".into())),
        };
        let (timeout, limit) = (self.limits.timeout, self.limits.output);
        // Reads and prompts come by the names of their MCP methods, which
        // no bridged tool can have (a `/` is no part of a tool's name).
        let outcome = match tool {
            offer::READ_RESOURCE => match arguments.get("uri").and_then(|u| u.as_str()) {
                Some(uri) => bridged.read(uri, timeout).await.and_then(|read| result::resource_content(read, limit)),
                None => Err(BridgeCallError::InvalidArguments("a read needs a `uri`".into())),
            },
            offer::GET_PROMPT => {
                let name = arguments.get("name").and_then(|n| n.as_str()).unwrap_or_default();
                let given = arguments.get("arguments").and_then(|a| a.as_object()).cloned().unwrap_or_default();
                bridged.prompt(name, given, timeout).await.and_then(|prompt| result::prompt_content(prompt, limit))
            }
            _ => bridged
                .call(tool, arguments, progress, timeout)
                .await
                .and_then(|answer| result::content_of(answer, limit)),
        };
        match outcome {
            Ok(content) => Ok(CallOutput::unreserved(content)),
            Err(e) => Err(match e {
                BridgeCallError::Unavailable(why) => failure("bridge_unavailable", why),
                BridgeCallError::ToolFailed(why) => failure("tool_failed", why),
                BridgeCallError::InvalidArguments(why) => failure("invalid_arguments", why),
                BridgeCallError::NotFound(why) => failure("not_found", why),
                BridgeCallError::Timeout(limit) => {
                    failure("timeout", format!("the bridged server did not answer within {limit:?}"))
                }
                BridgeCallError::TooLarge(bytes) => failure(
                    "output_too_large",
                    format!("the result holds {bytes} bytes; a call's may hold {}", self.limits.output),
                ),
                BridgeCallError::Failed(why) => failure("bridge_failed", why),
            }),
        }
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A call's failure in a bridged server, as callers see it: the model
/// reads it, except for refused arguments (a protocol error).
fn failure(kind: &str, message: String) -> InvokeCause {
    let tool_failure = !matches!(kind, "invalid_arguments" | "not_found");
    InvokeCause::Remote { kind: kind.into(), tool_failure, message, retryable: false }
}

/// How `entry` is started on this node.
fn plan(entry: ServerEntry, policy: &Policy, dir: &Path, sandboxed: bool, uid: u32) -> ServerPlan {
    let bridges = &policy.bridges;
    let grant = bridges.grant(&entry.name);
    let private_dir: PathBuf = dir.join(&entry.name);
    let mut env = BTreeMap::new();
    if let Launch::Stdio { env: own, .. } = &entry.launch {
        // The node's PATH, so `npx` and `uvx` are found as the operator
        // finds them; HOME is the server's own directory.
        if let Some(path) = std::env::var_os("PATH").and_then(|p| p.into_string().ok()) {
            env.insert("PATH".to_owned(), path);
        }
        env.insert("HOME".to_owned(), private_dir.display().to_string());
        env.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        for name in &grant.secrets {
            if let Some(secret) = policy.secrets.get(name) {
                env.insert(name.clone(), secret.expose().to_owned());
            }
        }
    }
    // Found once: after an upgrade in place the running program's path
    // reads as deleted.
    let exe = std::env::current_exe().ok();
    let (sandbox, isolation) = match &entry.launch {
        Launch::Http { url, .. } => {
            // Host and port, never credentials written into the URL.
            let parsed = reqwest::Url::parse(url).ok();
            let host = parsed.as_ref().and_then(|u| u.host_str()).unwrap_or_default();
            let host = match parsed.as_ref().and_then(reqwest::Url::port) {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            };
            (None, Isolation::Remote { host })
        }
        Launch::Stdio { .. } if !sandboxed => (None, Isolation::Unsandboxed),
        Launch::Stdio { .. } => {
            // Granted hosts: still no network of its own, a proxy instead.
            let (mut env, mut read_only) = (env.clone(), bridges.read_only.clone());
            if !grant.whole_network && !grant.network.is_empty() {
                env.extend(proxy::proxy_env());
                // The forwarder in front of the server is this program.
                read_only.extend(exe.clone());
            }
            let spec = SandboxSpec {
                private_dir: private_dir.clone(),
                read_only,
                hidden: Vec::new(),
                network: grant.whole_network,
                socket: None,
                env,
                memory_bytes: bridges.memory_bytes,
                processes: bridges.processes,
                cpu_time: bridges.cpu_time,
                tmp_bytes: bridges.tmp_bytes,
                uid,
            };
            let isolation = Isolation::OsSandbox {
                network: grant.network.clone(),
                whole_network: grant.whole_network,
                memory_bytes: spec.memory_bytes,
                processes: spec.processes,
                cpu_seconds: spec.cpu_time.as_secs(),
                secrets: grant.secrets.clone(),
            };
            (Some(spec), isolation)
        }
    };
    let proxy = (sandbox.is_some() && !grant.whole_network && !grant.network.is_empty()).then(|| grant.targets());
    ServerPlan { entry, sandbox, env, isolation, dir: private_dir, proxy, exe }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_give_what_the_policy_grants_and_never_show_credentials() {
        let mut policy = Policy::from_toml(
            "[secrets]\nAPI_KEY = { env = \"K\" }\n[bridges.servers.docs]\nsecrets = [\"API_KEY\"]\nnetwork = [\"h\"]",
            &|_| Some("s3cret".into()),
        )
        .unwrap();
        let remote = ServerEntry {
            name: "far".into(),
            launch: Launch::Http { url: "https://user:token@mcp.example.com/mcp".into(), headers: BTreeMap::new() },
        };
        let plan_of = |entry: ServerEntry, policy: &Policy, sandboxed| {
            plan(entry, policy, Path::new("/srv/bridges"), sandboxed, uid_for("docs", &mut Default::default()))
        };
        let far = plan_of(remote, &policy, true);
        assert_eq!(far.isolation, Isolation::Remote { host: "mcp.example.com".into() });
        let docs = ServerEntry {
            name: "docs".into(),
            launch: Launch::Stdio {
                command: "docs-server".into(),
                args: Vec::new(),
                env: BTreeMap::from([("MODE".into(), "fast".into())]),
            },
        };
        let sandboxed = plan_of(docs.clone(), &policy, true);
        let spec = sandboxed.sandbox.as_ref().unwrap();
        assert!(!spec.network && (FIRST_UID..FIRST_UID + UIDS).contains(&spec.uid), "hosts, not the network");
        assert_eq!(spec.env["HTTPS_PROXY"], format!("http://{}", proxy::PROXY_ADDR));
        assert_eq!(sandboxed.proxy.as_ref().map(Vec::len), Some(1));
        let mut taken = std::collections::BTreeSet::new();
        let (first, again) = (uid_for("docs", &mut taken), uid_for("docs", &mut taken));
        assert!(first == spec.uid && again != first, "stable by name, and never shared");
        assert_eq!(spec.env["API_KEY"], "s3cret");
        assert_eq!((spec.env["MODE"].as_str(), spec.env["HOME"].as_str()), ("fast", "/srv/bridges/docs"));
        assert!(matches!(&sandboxed.isolation, Isolation::OsSandbox { network, secrets, .. }
            if network == &["h"] && secrets == &["API_KEY"]));
        assert!(!format!("{:?}", sandboxed.isolation).contains("s3cret"));
        policy.bridges.unsandboxed = true;
        let plain = plan_of(docs, &policy, false);
        assert!(plain.sandbox.is_none() && plain.isolation == Isolation::Unsandboxed);
        assert!(plain.isolation.describe().contains("WITHOUT a sandbox"));
    }
}
