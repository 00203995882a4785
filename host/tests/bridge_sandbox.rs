//! The OS sandbox of bridged MCP servers holding, with real bubblewrap
//! (installed by scripts/test.sh): each escape a native server could try —
//! the network, home directories, the host's /tmp, writes outside its
//! directory, root-only files, other processes, a fork bomb, a memory
//! bomb — fails, and what it is given works.

use std::path::Path;
use std::process::Stdio;
use toolmesh_host::bridge::sandbox::{SandboxSpec, command, probe};

/// Runs `script` with `/bin/sh` in a sandbox of `spec`: (exit code, stdout, stderr).
fn run(spec: &SandboxSpec, script: &str) -> (i32, String, String) {
    let mut sandboxed = command(spec, "/bin/sh", &["-c".into(), script.into()]).unwrap();
    sandboxed.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = sandboxed.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

#[test]
fn a_sandboxed_process_keeps_to_what_it_is_given() {
    probe().expect("bubblewrap makes sandboxes here (scripts/test.sh installs it)");
    let private = tempfile::tempdir().unwrap();
    let host_tmp = tempfile::NamedTempFile::new().unwrap();
    let mut spec = SandboxSpec::new(private.path().join("server"));
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    spec.env.insert("GREETING".into(), "hello".into());

    // Given: its directory, its environment, a private /tmp.
    let (code, out, err) = run(
        &spec,
        "echo kept > note && cat note && echo $GREETING ${HOME:-no-home} && \
                                       echo t > /tmp/t && cat /tmp/t",
    );
    assert_eq!((code, out.as_str()), (0, "kept\nhello no-home\nt"), "{err}");
    assert_eq!(std::fs::read_to_string(spec.private_dir.join("note")).unwrap(), "kept\n");

    // Hidden or read-only: home directories, the host's /tmp, the rest of the host.
    let (code, out, _) = run(&spec, "ls -A /root /home | tr -d '\\n'");
    assert_eq!((code, out.as_str()), (0, "/home:/root:"));
    let (code, _, _) = run(&spec, &format!("test -e {}", host_tmp.path().display()));
    assert_ne!(code, 0, "the host's /tmp is visible");
    let (code, _, err) = run(&spec, "echo x > /usr/escape");
    assert!(code != 0 && err.contains("Read-only"), "{err}");
    assert!(!Path::new("/usr/escape").exists());
    let (code, _, _) = run(&spec, "cat /etc/shadow");
    assert_ne!(code, 0, "root-only files are readable");

    // Its own user and processes.
    let (_, out, _) = run(&spec, "id -u; ls /proc | grep -c '^[0-9]'");
    let (uid, processes) = out.split_once('\n').unwrap();
    if running_as_root() {
        assert_eq!(uid, "65534");
    }
    assert!(processes.parse::<u32>().unwrap() < 10, "other processes are visible: {processes}");

    // No network unless granted: a listener of the host's loopback is out of reach.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!(
        "python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')\""
    );
    let (code, out, _) = run(&spec, &connect);
    assert!(code != 0 && out.is_empty(), "reached the host's network: {out}");
    let granted = SandboxSpec { network: true, ..spec.clone() };
    let (code, out, err) = run(&granted, &connect);
    assert_eq!((code, out.as_str()), (0, "connected"), "{err}");
}

#[test]
fn bombs_are_contained() {
    probe().expect("bubblewrap makes sandboxes here (scripts/test.sh installs it)");
    let private = tempfile::tempdir().unwrap();
    let mut spec = SandboxSpec::new(private.path().join("bomb"));
    spec.env.insert("PATH".into(), "/usr/bin:/bin".into());
    spec.processes = 32;
    spec.memory_bytes = 256 << 20;
    let forks = "python3 -c \"
import os, time
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    n += 1
print(n)
\"";
    let (code, out, err) = run(&spec, forks);
    assert_eq!(code, 0, "{err}");
    assert!(out.parse::<u32>().unwrap() < 32, "{out} processes forked under a limit of 32");
    let (code, _, err) = run(&spec, "python3 -c 'b = bytearray(1 << 30)'");
    assert!(code != 0 && err.contains("MemoryError"), "{code}: {err}");
    // Within the limit it works.
    let (code, out, err) = run(&spec, "python3 -c 'b = bytearray(64 << 20); print(len(b))'");
    assert_eq!((code, out.as_str()), (0, "67108864"), "{err}");
}
