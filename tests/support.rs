//! Helpers for the end-to-end tests: where the `tool` binary and the built
//! components are, and running the binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The cargo target directory the tests were built into.
pub fn target_dir() -> PathBuf {
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors().nth(3).expect("target directory").to_owned()
}

/// The `tool` binary built alongside the tests.
pub fn tool_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.ancestors().nth(2).expect("profile directory").join(format!("tool{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} is missing: run `cargo build -p toolmesh-host` first", path.display());
    path
}

/// A component built by `scripts/build-components.sh`.
pub fn component(name: &str) -> PathBuf {
    let path = target_dir().join("wasm32-wasip2/release").join(format!("{name}.wasm"));
    assert!(path.exists(), "{} is missing: run scripts/build-components.sh first", path.display());
    path
}

/// The result of running `tool`.
pub struct Run {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

impl Run {
    /// Parses stdout as JSON, failing the test with both streams if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// The structured result of a successful `tool run --json`, failing
    /// the test with both streams if it failed.
    pub fn structured(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self.json()["structuredContent"].clone()
    }

    /// Both streams of a run that must have failed.
    pub fn failure(&self) -> String {
        assert_ne!(self.code, 0, "expected a failure, got:\n{}", self.stdout);
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `tool ARGS` with the tests' own cache directory (in the target
/// directory, so nothing is left elsewhere and later runs reuse compiled
/// code), a data directory of its own (so no local `tool serve`'s push
/// token is picked up) and no inherited log settings.
pub fn tool(args: &[&str]) -> Run {
    tool_as(&target_dir().join("e2e-config"), args)
}

/// Runs `tool ARGS` as the user whose configuration (publisher key, login)
/// is in `config_dir`.
pub fn tool_as(config_dir: &std::path::Path, args: &[&str]) -> Run {
    tool_with_input(config_dir, args, "")
}

/// Like [`tool_as`], with `input` on standard input.
pub fn tool_with_input(config_dir: &std::path::Path, args: &[&str], input: &str) -> Run {
    use std::io::Write as _;
    let cache = target_dir().join("e2e-cache");
    let mut child = Command::new(tool_binary())
        .args(args)
        .env("XDG_CACHE_HOME", &cache)
        .env("TOOLMESH_DATA", target_dir().join("e2e-data"))
        .env("TOOLMESH_CONFIG_DIR", config_dir)
        .env_remove("TOOLMESH_LOG")
        .env_remove("TOOLMESH_CONFIG")
        .env_remove("TOOLMESH_REGISTRY")
        .env_remove("TOOLMESH_TOKEN")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tool");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that does not read its input may exit first.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let output: Output = child.wait_with_output().expect("run tool");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `tool registry serve` on a loopback port, storing in `dir`, pushing with `token`.
pub fn registry_server(dir: &std::path::Path, token: &str) -> Server {
    let dir = dir.to_str().expect("a UTF-8 path");
    Server::start(&["registry", "serve", "--dir", dir, "--addr", "127.0.0.1:0", "--push-token", token])
}

/// A `tool` server process, killed when dropped.
pub struct Server {
    child: std::process::Child,
    /// The base URL it announced.
    pub url: String,
}

impl Server {
    /// Starts `tool ARGS` and waits (up to 30 s) for its
    /// `listening on http://…` line on stderr.
    pub fn start(args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(tool_binary())
            .args(args)
            .env_remove("TOOLMESH_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start tool");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        // Owned by the guard first, so a failed start still kills it.
        let mut server = Server { child, url: String::new() };
        server.url = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("server did not announce its address");
        server
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
