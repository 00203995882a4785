//! The OS sandbox a bridged MCP server runs in: bubblewrap (`bwrap`,
//! Debian package `bubblewrap`) with util-linux's `prlimit` and `setpriv`.
//!
//! What the process gets:
//! - the host file system read-only, with `/home`, `/root`, `/tmp`, `/run`
//!   and `/var/tmp` hidden by empty file systems; a private `/tmp` of a
//!   bounded size; its own private directory read-write; directories it
//!   needs from the hidden places (a toolchain under `/root/.cache`)
//!   read-only, as [`SandboxSpec::read_only`] lists them;
//! - its own PID, IPC and UTS namespaces, and no network (a namespace of
//!   its own with only loopback) unless [`SandboxSpec::network`];
//! - the environment [`SandboxSpec::env`] sets, and nothing else;
//! - when the node runs as root, an unprivileged user (uid
//!   [`SandboxSpec::uid`]) with no capabilities: bubblewrap as root keeps
//!   capabilities, and a user namespace alone maps the host's root, so
//!   root-only files would stay readable and process limits void;
//! - limits: data memory ([`SandboxSpec::memory_bytes`], `RLIMIT_DATA`: an
//!   address-space limit breaks V8's WebAssembly), processes and threads
//!   of its user ([`SandboxSpec::processes`], `RLIMIT_NPROC`), CPU time
//!   ([`SandboxSpec::cpu_time`], `RLIMIT_CPU`), and the private `/tmp` size;
//! - it dies with the process that started it, and everything in its PID
//!   namespace with it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Where the node's proxy socket shows inside a sandbox granted hosts.
pub const PROXY_SOCKET: &str = "/run/toolmesh-proxy.sock";

/// Directories hidden from the sandboxed process.
const HIDDEN: [&str; 5] = ["/home", "/root", "/tmp", "/run", "/var/tmp"];

/// What one sandboxed process may have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Its own directory, read-write, at the same path inside (made
    /// writable by [`SandboxSpec::uid`]).
    pub private_dir: PathBuf,
    /// Directories under the hidden places it needs, read-only.
    pub read_only: Vec<PathBuf>,
    /// More directories to hide (the node's data, the other servers'
    /// directories), beyond [`HIDDEN`]'s.
    pub hidden: Vec<PathBuf>,
    /// The host's network (all of it) instead of none.
    pub network: bool,
    /// A Unix socket shown inside at [`PROXY_SOCKET`] (the node's proxy).
    pub socket: Option<PathBuf>,
    /// Its environment, whole.
    pub env: BTreeMap<String, String>,
    /// Bytes of data memory (heap) it may use.
    pub memory_bytes: u64,
    /// Processes and threads its user may have at once.
    pub processes: u64,
    /// CPU time it may use (`RLIMIT_CPU`: the kernel stops it once spent).
    pub cpu_time: std::time::Duration,
    /// Bytes its private `/tmp` holds.
    pub tmp_bytes: u64,
    /// The user (and group) it runs as when the node runs as root.
    pub uid: u32,
}

impl SandboxSpec {
    /// A spec with the default limits (1 GiB of data memory, 128
    /// processes, an hour of CPU time, 64 MiB of `/tmp`, user `nobody`)
    /// and no network.
    pub fn new(private_dir: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            private_dir: private_dir.into(),
            read_only: Vec::new(),
            hidden: Vec::new(),
            network: false,
            socket: None,
            env: BTreeMap::new(),
            memory_bytes: 1 << 30,
            processes: 128,
            cpu_time: std::time::Duration::from_secs(3600),
            tmp_bytes: 64 << 20,
            uid: 65534,
        }
    }
}

/// Why processes cannot be sandboxed on this machine.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    /// A program the sandbox needs is missing.
    #[error("`{0}` is not installed (Debian: apt-get install bubblewrap util-linux)")]
    Missing(&'static str),
    /// bubblewrap ran and refused (no user namespaces, no capabilities).
    #[error("bubblewrap cannot make a sandbox here: {0}")]
    Refused(String),
    /// The private directory could not be readied.
    #[error("cannot ready the sandbox's directory {path}: {error}")]
    Directory {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// Whether this process runs as root (and so must drop to another user).
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Checks that sandboxes can be made here: the programs are there and
/// bubblewrap can make its namespaces. Cheap (one short process).
pub fn probe() -> Result<(), Unavailable> {
    for program in ["bwrap", "prlimit", "setpriv"] {
        if which(program).is_none() {
            return Err(Unavailable::Missing(program));
        }
    }
    let out = std::process::Command::new("bwrap")
        .args(["--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|_| Unavailable::Missing("bwrap"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Unavailable::Refused(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}

/// Where `program` is on the `PATH`, if anywhere.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|path| path.is_file())
}

/// Readies `spec`'s private directory (made, owned by the sandbox's user
/// when the node is root) and returns the command that runs `program` with
/// `args` in the sandbox. Its standard streams are the caller's to set;
/// the process dies with the thread that spawns it, so spawn it from a
/// thread that lives as long as the process should.
pub fn command(spec: &SandboxSpec, program: &str, args: &[String]) -> Result<std::process::Command, Unavailable> {
    let root = running_as_root();
    let private = &spec.private_dir;
    let ready = |error| Unavailable::Directory { path: private.clone(), error };
    std::fs::create_dir_all(private).map_err(ready)?;
    if root {
        use std::os::unix::fs::MetadataExt;
        // A directory another uid had (before an upgrade): all of it becomes this one's.
        if std::fs::metadata(private).map_err(ready)?.uid() != spec.uid {
            own_all(private, spec.uid).map_err(ready)?;
        }
    }
    // Its own, and no one else's.
    std::fs::set_permissions(private, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(ready)?;
    let mut command = std::process::Command::new("prlimit");
    command
        .arg(format!("--data={}", spec.memory_bytes))
        .arg(format!("--nproc={}", spec.processes))
        .arg(format!("--cpu={}", spec.cpu_time.as_secs().max(1)))
        .arg("--")
        .arg("bwrap")
        .args(bwrap_args(spec, root))
        .arg("--");
    if root {
        command.args([
            "setpriv".into(),
            format!("--reuid={}", spec.uid),
            format!("--regid={}", spec.uid),
            "--clear-groups".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--".into(),
        ]);
    }
    // bwrap clears what it passes on; prlimit and bwrap are found on a plain PATH.
    command.arg(program).args(args).env_clear().env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin");
    Ok(command)
}

/// Gives `path` and everything under it to `uid` (links themselves, never
/// what they point at).
fn own_all(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            own_all(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

/// The arguments of `bwrap` for `spec` (`root`: the node runs as root, so
/// `setpriv` follows them).
fn bwrap_args(spec: &SandboxSpec, root: bool) -> Vec<String> {
    let mut args: Vec<String> = [
        "--die-with-parent",
        "--new-session",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "mcp-sandbox",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    if !spec.network {
        args.push("--unshare-net".into());
    }
    if !root {
        // Unprivileged: a user namespace of its own, and none further.
        args.extend(["--unshare-user", "--disable-userns"].map(str::to_owned));
    }
    for hidden in HIDDEN {
        if hidden == "/tmp" {
            args.extend(["--size".into(), spec.tmp_bytes.to_string()]);
        }
        args.extend(["--tmpfs".into(), hidden.into()]);
    }
    args.extend(["--chmod", "1777", "/tmp"].map(str::to_owned));
    if let Some(socket) = &spec.socket {
        args.extend(["--bind".into(), socket.display().to_string(), PROXY_SOCKET.into()]);
    }
    // More to hide where the places above do not already.
    let mut hidden: Vec<&Path> = HIDDEN.iter().map(Path::new).collect();
    let mut extras: Vec<&PathBuf> = spec.hidden.iter().collect();
    extras.sort_by_key(|p| p.as_os_str().len());
    for extra in extras {
        if extra.is_absolute() && !hidden.iter().any(|h| extra.starts_with(h)) {
            args.extend(["--tmpfs".into(), extra.display().to_string()]);
            hidden.push(extra);
        }
    }
    // What must show through the hidden places: their parents made
    // traversable, then the directories themselves.
    let mut made = BTreeSet::new();
    let binds = spec.read_only.iter().map(|p| (p, "--ro-bind")).chain([(&spec.private_dir, "--bind")]);
    for (path, how) in binds {
        let under = hidden.iter().filter(|h| path.starts_with(h)).max_by_key(|h| h.as_os_str().len()).copied();
        if let Some(hidden) = under {
            let mut parents: Vec<&Path> = path.ancestors().skip(1).take_while(|a| *a != hidden).collect();
            parents.reverse();
            for parent in parents {
                if made.insert(parent.to_owned()) {
                    args.extend(["--perms".into(), "0755".into(), "--dir".into(), parent.display().to_string()]);
                }
            }
        }
        let shown = path.display().to_string();
        args.extend([how.to_owned(), shown.clone(), shown]);
    }
    // Nothing bwrap inherited passes on; then the environment as given.
    args.push("--clearenv".into());
    for (name, value) in &spec.env {
        args.extend(["--setenv".into(), name.clone(), value.clone()]);
    }
    args.extend(["--chdir".into(), spec.private_dir.display().to_string()]);
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_places_show_only_what_is_listed() {
        let mut spec = SandboxSpec::new("/tmp/bridge/time");
        spec.read_only.push("/root/.cache/toolmesh/node".into());
        spec.env.insert("PATH".into(), "/usr/bin".into());
        let args = bwrap_args(&spec, true).join(" ");
        assert!(args.contains("--unshare-net"), "{args}");
        assert!(args.contains("--tmpfs /root"), "{args}");
        assert!(args.contains("--size 67108864 --tmpfs /tmp"), "{args}");
        let perms = "--perms 0755 --dir /root/.cache --perms 0755 --dir /root/.cache/toolmesh";
        assert!(args.contains(&format!("{perms} --ro-bind /root/.cache/toolmesh/node /root/.cache/toolmesh/node")));
        assert!(args.contains("--perms 0755 --dir /tmp/bridge --bind /tmp/bridge/time /tmp/bridge/time"), "{args}");
        // The environment is cleared, then set, and the mounts come first.
        assert!(args.contains("--clearenv --setenv PATH /usr/bin"), "{args}");
        assert!(args.find("--tmpfs /root").unwrap() < args.find("--ro-bind /root/.cache").unwrap());
        assert!(!args.contains("--unshare-user"));
        // The node's data hidden, the server's own directory under it shown.
        let own = SandboxSpec {
            private_dir: "/srv/data/bridges/docs".into(),
            hidden: vec!["/srv/data/bridges".into(), "/srv/data".into(), "/tmp/elsewhere".into()],
            ..spec.clone()
        };
        let args = bwrap_args(&own, true).join(" ");
        assert!(args.contains("--tmpfs /srv/data "), "{args}");
        assert!(args.contains("--perms 0755 --dir /srv/data/bridges --bind /srv/data/bridges/docs"), "{args}");
        assert!(!args.contains("--tmpfs /srv/data/bridges") && !args.contains("--tmpfs /tmp/elsewhere"), "{args}");
        let unprivileged = bwrap_args(&SandboxSpec { network: true, ..spec }, false).join(" ");
        assert!(!unprivileged.contains("--unshare-net") && unprivileged.contains("--unshare-user"));
    }
}
