//! A bridged server's process as the node holds it: killed with what it
//! started when dropped, its standard error logged in bounded lines.

/// Lines of a server's standard error logged per start; the rest are counted.
const MAX_LOG_LINES: u32 = 1000;

/// A server's process, killed when dropped: in its sandbox, everything
/// in it dies with it (its own PID namespace); unsandboxed, its process
/// group is killed.
pub(super) struct ServerProcess {
    child: tokio::process::Child,
    group: bool,
}

impl ServerProcess {
    /// Holds `child`; `group`: it leads a process group of its own, killed with it.
    pub(super) fn new(child: tokio::process::Child, group: bool) -> Self {
        ServerProcess { child, group }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.group
            && let Some(pid) = self.child.id().and_then(|id| rustix::process::Pid::from_raw(id as i32))
        {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
        let _ = self.child.start_kill();
    }
}

/// Longest line of a server's standard error logged; the rest of it is cut.
const MAX_LOG_LINE: usize = 1000;

/// Logs a server's standard error, line by line, up to [`MAX_LOG_LINES`]
/// lines of at most [`MAX_LOG_LINE`] bytes; reads (and drops) the rest to
/// its end, so the server never blocks on a full pipe.
pub(super) async fn log_lines(server: String, mut stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncReadExt;
    let (mut logged, mut dropped) = (0u32, 0u64);
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LOG_LINE);
    let mut chunk = vec![0u8; 8192];
    let mut emit = |line: &mut Vec<u8>| {
        if logged < MAX_LOG_LINES {
            logged += 1;
            tracing::info!(target: "toolmesh::bridge", server = %server, "{}", String::from_utf8_lossy(line));
        } else {
            dropped += 1;
        }
        line.clear();
    };
    loop {
        let read = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        for &byte in &chunk[..read] {
            if byte == b'\n' {
                emit(&mut line);
            } else if line.len() < MAX_LOG_LINE {
                line.push(byte);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line);
    }
    if dropped > 0 {
        tracing::info!(target: "toolmesh::bridge", server = %server, dropped, "log lines dropped");
    }
}
