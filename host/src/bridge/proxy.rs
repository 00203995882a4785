//! Network by host for sandboxed servers. A server granted hosts still
//! has no network of its own (its network namespace holds only loopback);
//! inside the sandbox a small forwarder ([`super::shim`]) listens on
//! [`PROXY_ADDR`] and passes each connection through a Unix socket to the
//! node, where this proxy reads the request (`CONNECT host:port`, or a
//! plain-HTTP request in absolute form), checks the host and port against
//! the server's grant and every address the name resolves to, and only
//! then connects. Servers reach it through the `HTTP_PROXY`-style
//! variables [`proxy_env`] sets; anything that ignores them has no way out.

use crate::grant::address::{AddressClass, classify};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use toolmesh_registry::request::Target;

/// Where the forwarder listens inside each sandbox (its own loopback).
pub const PROXY_ADDR: &str = "127.0.0.1:3128";

/// Longest request head read.
const MAX_HEAD: usize = 16 << 10;

/// Longest wait for a request head, a name's addresses, or a connection.
const WAIT: Duration = Duration::from_secs(10);

/// Connections one server has open through the proxy at once.
const MAX_CONNECTIONS: usize = 64;

/// Connections all servers of a node have open through the proxy at once.
pub const MAX_NODE_CONNECTIONS: usize = 256;

/// Longest life of one connection through the proxy.
const MAX_LIFE: Duration = Duration::from_secs(15 * 60);

/// The node-wide count of proxied connections.
pub type NodeSlots = Arc<tokio::sync::Semaphore>;

/// The environment that points a server's HTTP clients at the proxy.
pub fn proxy_env() -> Vec<(String, String)> {
    let url = format!("http://{PROXY_ADDR}");
    let mut env: Vec<(String, String)> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"]
        .into_iter()
        .map(|name| (name.to_owned(), url.clone()))
        .collect();
    // Its own loopback by name; an address (even 127.0.0.1) goes to the
    // proxy, which reaches the node's only where granted as written.
    for name in ["NO_PROXY", "no_proxy"] {
        env.push((name.to_owned(), "localhost".to_owned()));
    }
    // Node.js reads the variables only when told to.
    env.push(("NODE_USE_ENV_PROXY".to_owned(), "1".to_owned()));
    env
}

/// What a request through the proxy asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The host, as written (an IPv6 address without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// The head to send on once connected: none for `CONNECT` (a tunnel),
    /// else the request rewritten to origin form.
    pub forward: Option<Vec<u8>>,
}

/// Reads what the request head `head` (up to its blank line) asks for.
pub fn parse_head(head: &[u8]) -> Result<Wanted, String> {
    let text = std::str::from_utf8(head).map_err(|_| "the request head is not text".to_owned())?;
    let (line, rest) = text.split_once("\r\n").ok_or("no request line")?;
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(format!("not a request line: {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not HTTP/1: {version:?}"));
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Wanted { host, port, forward: None });
    }
    let after = target.strip_prefix("http://").ok_or("only CONNECT and plain http:// requests pass the proxy")?;
    let (authority, path) = match after.find('/') {
        Some(at) => (&after[..at], &after[at..]),
        None => (after, "/"),
    };
    let (host, port) = split_authority(authority, Some(80))?;
    // One request per connection (a later one on it would go unchecked),
    // and the Host it names must be the one checked.
    let mut headers = String::new();
    for header in rest.split("\r\n").filter(|h| !h.is_empty()) {
        let (name, value) = header.split_once(':').ok_or_else(|| format!("not a header: {header:?}"))?;
        let name = name.trim().to_ascii_lowercase();
        if name == "host" && split_authority(value.trim(), Some(80)).ok() != Some((host.clone(), port)) {
            return Err(format!("the Host header {:?} is not the request's {authority}", value.trim()));
        }
        if !matches!(name.as_str(), "connection" | "proxy-connection" | "keep-alive" | "proxy-authorization") {
            headers.push_str(header);
            headers.push_str("\r\n");
        }
    }
    let forward = format!("{method} {path} {version}\r\n{headers}Connection: close\r\n\r\n").into_bytes();
    Ok(Wanted { host, port, forward: Some(forward) })
}

/// `host:port` (or `[v6]:port`; the port `default` when absent).
fn split_authority(authority: &str, default: Option<u16>) -> Result<(String, u16), String> {
    let bad = || format!("not a host and port: {authority:?}");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            (host, port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?)
        }
        _ => (authority, default.ok_or_else(bad)?),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['@', '/', ' ']) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// Whether `targets` grant `host` on `port`: a target with a port grants
/// that port; one without, its scheme's (`https://` 443, `http://` 80),
/// or with neither, the web's (80 and 443).
pub fn granted(targets: &[Target], host: &str, port: u16) -> bool {
    use toolmesh_registry::request::Scheme;
    let shown = if host.contains(':') { format!("[{host}]") } else { host.to_owned() };
    targets.iter().any(|t| {
        let port_granted = match (t.port, t.scheme) {
            (Some(p), _) => p == port,
            (None, Some(Scheme::Https)) => port == 443,
            (None, Some(Scheme::Http)) => port == 80,
            (None, None) => port == 80 || port == 443,
        };
        (t.host.matches(host) || t.host.matches(&shown)) && port_granted
    })
}

/// The addresses to connect to for `host`: an address written literally
/// (granted by name) is used as it is; a name must resolve to public
/// addresses only, so no name leads into the node's own networks.
async fn addresses(host: &str, port: u16) -> Result<Vec<std::net::SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match classify(ip) {
            AddressClass::Unusable => Err(format!("{ip} is never a destination")),
            _ => Ok(vec![(ip, port).into()]),
        };
    }
    let found = tokio::time::timeout(WAIT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| format!("{host} did not resolve in time"))?
        .map_err(|e| format!("{host} does not resolve: {e}"))?
        .collect::<Vec<_>>();
    if let Some(inside) = found.iter().find(|a| classify(a.ip()) != AddressClass::Public) {
        return Err(format!("{host} resolves to {}, {}", inside.ip(), classify(inside.ip()).describe()));
    }
    if found.is_empty() { Err(format!("{host} has no addresses")) } else { Ok(found) }
}

/// A server's proxy: its socket, in a directory only the node can enter.
pub struct ProxySocket {
    dir: tempfile::TempDir,
}

impl ProxySocket {
    /// The socket's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("p.sock")
    }
}

/// Serves server `server`'s proxy, granting `targets`, until `stop` fires,
/// on a Unix socket made now in a fresh private directory and open only to
/// the server's user (`uid`, when the node runs as root); at most
/// [`MAX_CONNECTIONS`] of its connections at once, and `node` counts them
/// among the node's.
pub fn serve(
    server: String,
    (uid, targets): (Option<u32>, Vec<Target>),
    node: NodeSlots,
    mut stop: super::Stop,
) -> std::io::Result<ProxySocket> {
    // A short path: a socket's is at most 108 bytes.
    let dir = tempfile::Builder::new().prefix("tm-").tempdir()?;
    let socket = ProxySocket { dir };
    let path = socket.path();
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    if let Some(uid) = uid {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid))?;
    }
    let targets: Arc<[Target]> = targets.into();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = super::fired(&mut stop) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, most likely: wait, do not spin.
                        tracing::warn!(target: "toolmesh::bridge", server = %server, "proxy cannot accept: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            let (Ok(slot), Ok(node_slot)) = (slots.clone().try_acquire_owned(), node.clone().try_acquire_owned())
            else {
                tracing::warn!(target: "toolmesh::bridge", server = %server, "proxy connection refused: too many open");
                continue;
            };
            let (server, targets) = (server.clone(), targets.clone());
            tokio::spawn(async move {
                let _slots = (slot, node_slot);
                let _ = tokio::time::timeout(MAX_LIFE, connect(&server, stream, &targets)).await;
            });
        }
    });
    Ok(socket)
}

/// Serves one connection: reads its request, checks it, connects, relays.
async fn connect(server: &str, mut client: tokio::net::UnixStream, targets: &[Target]) {
    let (head, extra) = match tokio::time::timeout(WAIT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        _ => return refuse(&mut client, "400 Bad Request", "no request head").await,
    };
    let wanted = match parse_head(&head) {
        Ok(wanted) => wanted,
        Err(why) => {
            tracing::info!(target: "toolmesh::bridge", server, "proxy refused: {why}");
            return refuse(&mut client, "400 Bad Request", &why).await;
        }
    };
    let (host, port) = (&wanted.host, wanted.port);
    if !granted(targets, host, port) {
        tracing::info!(target: "toolmesh::bridge", server, host = %host, port, "proxy refused: not granted");
        let why = format!("{host}:{port} is not granted to this server by the node's policy");
        return refuse(&mut client, "403 Forbidden", &why).await;
    }
    let upstream = match addresses(host, port).await {
        Ok(addresses) => match tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(&addresses[..])).await {
            Ok(Ok(upstream)) => upstream,
            Ok(Err(e)) => return refuse(&mut client, "502 Bad Gateway", &format!("{host}:{port}: {e}")).await,
            Err(_) => {
                return refuse(&mut client, "504 Gateway Timeout", &format!("{host}:{port} did not answer")).await;
            }
        },
        Err(why) => {
            tracing::info!(target: "toolmesh::bridge", server, host = %host, port, "proxy refused: {why}");
            return refuse(&mut client, "403 Forbidden", &why).await;
        }
    };
    tracing::info!(target: "toolmesh::bridge", server, host = %host, port, "proxy connected");
    let mut upstream = upstream;
    let sent = match &wanted.forward {
        None => match client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await {
            Ok(()) => upstream.write_all(&extra).await,
            Err(e) => Err(e),
        },
        Some(head) => match upstream.write_all(head).await {
            Ok(()) => upstream.write_all(&extra).await,
            Err(e) => Err(e),
        },
    };
    if sent.is_ok() {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    }
}

/// The request head (through its blank line) and what came after it.
async fn read_head(client: &mut tokio::net::UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let extra = buffer.split_off(end + 4);
            return Ok((buffer, extra));
        }
        if buffer.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
}

/// Answers with `status` and `why`, and closes.
async fn refuse(client: &mut tokio::net::UnixStream, status: &str, why: &str) {
    let body = format!("toolmesh proxy: {why}\n");
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(answer.as_bytes()).await;
    let _ = client.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_and_grants_checked() {
        let tunnel = parse_head(b"CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n").unwrap();
        assert_eq!((tunnel.host.as_str(), tunnel.port, tunnel.forward), ("api.example.com", 443, None));
        let head = b"GET http://127.0.0.1:8080/a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nProxy-Connection: keep-alive\r\nAccept: */*\r\n\r\n";
        let plain = parse_head(head).unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 8080));
        let forward = String::from_utf8(plain.forward.unwrap()).unwrap();
        assert_eq!(forward, "GET /a?b HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nConnection: close\r\n\r\n");
        let other_site = b"GET http://127.0.0.1:8080/ HTTP/1.1\r\nHost: intranet.local\r\n\r\n";
        assert!(parse_head(other_site).unwrap_err().contains("Host header"));
        let v6 = parse_head(b"CONNECT [::1]:9 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9));
        for bad in [
            &b"GET https://x/ HTTP/1.1\r\n\r\n"[..],
            b"GET /relative HTTP/1.1\r\n\r\n",
            b"CONNECT x HTTP/1.1\r\n\r\n",
            b"CONNECT user@x:1 HTTP/1.1\r\n\r\n",
            b"CONNECT x:1 SPDY/3\r\n\r\n",
            b"\xff\r\n\r\n",
        ] {
            assert!(parse_head(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let secure: Vec<Target> = vec!["https://secure.example.com".parse().unwrap()];
        assert!(granted(&secure, "secure.example.com", 443) && !granted(&secure, "secure.example.com", 80));
        let targets: Vec<Target> = ["api.example.com", "*.example.org", "127.0.0.1:8080", "[::1]:9"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert!(granted(&targets, "api.example.com", 443) && granted(&targets, "api.example.com", 80));
        assert!(!granted(&targets, "api.example.com", 22), "no port written: the web's ports only");
        assert!(granted(&targets, "a.example.org", 443) && !granted(&targets, "example.org", 443));
        assert!(granted(&targets, "127.0.0.1", 8080) && !granted(&targets, "127.0.0.1", 8081));
        assert!(granted(&targets, "::1", 9) && !granted(&targets, "localhost", 8080));
    }

    #[test]
    fn names_into_the_nodes_networks_are_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let inside = addresses("localhost", 80).await.unwrap_err();
            assert!(inside.contains("loopback"), "{inside}");
            assert!(addresses("127.0.0.1", 80).await.is_ok(), "an address granted as written");
            assert!(addresses("0.0.0.0", 80).await.is_err());
        });
    }
}
