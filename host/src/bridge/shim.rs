//! The forwarder that runs inside a sandbox granted hosts, in front of
//! the server (`tool bridge-shim`): it listens on the sandbox's own
//! loopback ([`super::proxy::PROXY_ADDR`]), passes every connection to the
//! node's proxy through the Unix socket bound into the sandbox, runs the
//! server as its child with the same standard streams, and exits as the
//! server does. It holds no rights the server lacks: it only moves bytes
//! to a socket the server could reach itself.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

/// Connections forwarded at once.
const MAX_OPEN: usize = 32;

/// Runs `program` with `args`, forwarding [`super::proxy::PROXY_ADDR`] to
/// `socket`; returns the program's exit code (or why it could not run).
pub fn run(socket: &Path, program: &str, args: &[String]) -> Result<i32, String> {
    let listener = TcpListener::bind(super::proxy::PROXY_ADDR)
        .map_err(|e| format!("cannot listen on {}: {e}", super::proxy::PROXY_ADDR))?;
    let socket = socket.to_owned();
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepting = std::thread::Builder::new().spawn(move || {
        for client in listener.incoming().flatten() {
            // At most MAX_OPEN at once; a thread that cannot start drops its connection.
            if open.fetch_add(1, Ordering::SeqCst) >= MAX_OPEN {
                open.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let (socket, open) = (socket.clone(), open.clone());
            let started = std::thread::Builder::new().spawn(move || {
                if let Ok(node) = UnixStream::connect(&socket) {
                    relay(client, node);
                }
                open.fetch_sub(1, Ordering::SeqCst);
            });
            if started.is_err() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    });
    accepting.map_err(|e| format!("cannot start the forwarder: {e}"))?;
    let status = Command::new(program).args(args).status().map_err(|e| format!("cannot start `{program}`: {e}"))?;
    Ok(status.code().unwrap_or(1))
}

/// Copies both ways between `client` and `node` until either side ends.
fn relay(client: TcpStream, node: UnixStream) {
    let (Ok(mut client_read), Ok(mut node_read)) = (client.try_clone(), node.try_clone()) else { return };
    let (mut client_write, mut node_write) = (client, node);
    let up = std::thread::Builder::new().spawn(move || {
        let _ = copy(&mut client_read, &mut node_write);
        let _ = node_write.shutdown(Shutdown::Write);
    });
    let Ok(up) = up else { return };
    let _ = copy(&mut node_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<()> {
    let mut buffer = [0u8; 16 << 10];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read])?;
    }
}
