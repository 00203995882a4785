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

/// Runs `program` with `args`, forwarding [`super::proxy::PROXY_ADDR`] to
/// `socket`; returns the program's exit code (or why it could not run).
pub fn run(socket: &Path, program: &str, args: &[String]) -> Result<i32, String> {
    let listener = TcpListener::bind(super::proxy::PROXY_ADDR)
        .map_err(|e| format!("cannot listen on {}: {e}", super::proxy::PROXY_ADDR))?;
    let socket = socket.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let socket = socket.clone();
            std::thread::spawn(move || {
                if let Ok(node) = UnixStream::connect(&socket) {
                    relay(client, node);
                }
            });
        }
    });
    let status = Command::new(program).args(args).status().map_err(|e| format!("cannot start `{program}`: {e}"))?;
    Ok(status.code().unwrap_or(1))
}

/// Copies both ways between `client` and `node` until either side ends.
fn relay(client: TcpStream, node: UnixStream) {
    let (Ok(mut client_read), Ok(mut node_read)) = (client.try_clone(), node.try_clone()) else { return };
    let (mut client_write, mut node_write) = (client, node);
    let up = std::thread::spawn(move || {
        let _ = copy(&mut client_read, &mut node_write);
        let _ = node_write.shutdown(Shutdown::Write);
    });
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
