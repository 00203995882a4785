//! Outbound HTTP (`wasi:http/outgoing-handler`), for calls granted network.
//!
//! Every request a tool sends is checked here, in order:
//!
//! 1. the call has a network grant and requests left;
//! 2. scheme, host, port and method match one granted rule;
//! 3. the host is resolved (the policy's fixed answers first, then DNS) and
//!    **every** address is checked: loopback, private and link-local only
//!    when the policy allows private targets, cloud metadata addresses only
//!    when named literally, unusable ranges never;
//! 4. the connection goes to the checked address (no second lookup), TLS
//!    verified against the web's roots for the name the tool used.
//!
//! The host never follows redirects: a tool that follows one sends a new
//! request, checked like the first. Response bodies count against the
//! call's byte cap; connect, first-byte and between-bytes waits are the
//! policy's or shorter. Each refusal is recorded for the call's error.

use crate::grant::NetworkGrant;
use crate::grant::address;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use toolmesh_registry::request::Scheme;
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Why the host refused or cut off a call's requests, for its error.
#[derive(Debug, Clone, Default)]
pub(crate) struct Refusals(Arc<Mutex<Vec<String>>>);

impl Refusals {
    /// Records (and logs) the first few refusals; a tool looping on refused
    /// requests fills neither the log nor memory.
    fn push(&self, why: String) {
        if let Ok(mut list) = self.0.lock()
            && list.len() < 8
        {
            tracing::info!(target: "toolmesh::grant", "{why}");
            list.push(why);
        }
    }

    /// What was refused, joined for a message; empty when nothing was.
    pub(crate) fn text(&self) -> String {
        self.0.lock().map(|list| list.join("; ")).unwrap_or_default()
    }
}

/// The per-call state behind `wasi:http`: the grant and what it has used.
pub(crate) struct HttpHooks {
    grant: Option<Arc<NetworkGrant>>,
    sent: u32,
    received: Arc<AtomicU64>,
    pub(crate) refusals: Refusals,
}

impl HttpHooks {
    /// Hooks for a call granted `grant` (none: every request is refused).
    pub(crate) fn new(grant: Option<Arc<NetworkGrant>>) -> Self {
        HttpHooks { grant, sent: 0, received: Arc::default(), refusals: Refusals::default() }
    }

    /// Steps 1 and 2: the grant that lets this request out. Every attempt
    /// counts against the call's requests, refused ones too.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Arc<NetworkGrant>, (Error, String)> {
        let uri = shown(request.uri());
        let Some(grant) = self.grant.clone() else {
            return Err((Error::HttpRequestDenied, format!("{uri}: this call has no network grant")));
        };
        self.sent = self.sent.saturating_add(1);
        if self.sent > grant.policy.max_requests {
            return Err((
                Error::ConnectionLimitReached,
                format!("{uri}: the call's {} requests are spent", grant.policy.max_requests),
            ));
        }
        let uri_parts = request.uri();
        let scheme = match uri_parts.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            _ => return Err((Error::HttpProtocolError, format!("{uri}: only http and https are supported"))),
        };
        let host = uri_parts.host().unwrap_or_default();
        let port = uri_parts.port_u16().unwrap_or(scheme.default_port());
        let method = request.method().as_str();
        if !grant.rules.iter().any(|rule| rule.allows(scheme, host, port, method)) {
            let granted: Vec<String> = grant.rules.iter().map(ToString::to_string).collect();
            return Err((
                Error::HttpRequestDenied,
                format!("{method} {uri} is not granted (granted: {})", granted.join(", ")),
            ));
        }
        Ok(grant)
    }
}

/// What [`WasiHttpHooks::send_request`] returns.
type SendFuture = Box<
    dyn Future<Output = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>>
        + Send,
>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        match self.admit(&request) {
            Err((error, why)) => {
                self.refusals.push(why);
                Box::new(async move { Err(error) })
            }
            Ok(grant) => {
                let outbound = Outbound { grant, received: self.received.clone(), refusals: self.refusals.clone() };
                Box::new(outbound.send(request, options.unwrap_or_default()))
            }
        }
    }
}

/// One admitted request on its way out.
struct Outbound {
    grant: Arc<NetworkGrant>,
    received: Arc<AtomicU64>,
    refusals: Refusals,
}

/// A byte stream a request may go over: TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

impl Outbound {
    async fn send(
        self,
        mut request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error> {
        let grant = &self.grant;
        let shorter = |asked: Option<Duration>, max: Duration| asked.map_or(max, |a| a.min(max));
        let connect_timeout = shorter(options.connect_timeout, grant.policy.connect_timeout);
        let first_byte_timeout = shorter(options.first_byte_timeout, grant.policy.first_byte_timeout);
        let between_bytes_timeout = shorter(options.between_bytes_timeout, grant.policy.between_bytes_timeout);

        let full_uri = request.uri().clone();
        let uri = shown(&full_uri);
        let https = full_uri.scheme_str() == Some("https");
        let host = full_uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = full_uri.port_u16().unwrap_or(if https { 443 } else { 80 });

        // One deadline for the whole connection: name, TCP and TLS.
        let connected_by = tokio::time::Instant::now() + connect_timeout;
        let too_slow = |what: &str| self.refusals.push(format!("{uri}: {what} within {connect_timeout:?}"));
        let Ok(addresses) = tokio::time::timeout_at(connected_by, self.resolve(&host, port)).await else {
            too_slow("no name lookup");
            return Err(Error::DnsTimeout);
        };
        let addresses = addresses?;
        let Ok(stream) = tokio::time::timeout_at(connected_by, connect(&addresses)).await else {
            too_slow("no connection");
            return Err(Error::ConnectionTimeout);
        };
        let stream = stream.map_err(Error::Connect)?;
        let stream: Box<dyn Stream> = if https {
            let name = server_name(&host)?;
            let tls = tokio_rustls::TlsConnector::from(tls_config());
            let Ok(stream) = tokio::time::timeout_at(connected_by, tls.connect(name, stream)).await else {
                too_slow("no TLS session");
                return Err(Error::ConnectionTimeout);
            };
            match stream {
                Ok(stream) => Box::new(stream),
                Err(e) => {
                    self.refusals.push(format!("{uri}: TLS: {e}"));
                    return Err(Error::Tls(e));
                }
            }
        } else {
            Box::new(stream)
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let connection: AbortOnDropJoinHandle<Result<(), hyper::Error>> = tokio::spawn(connection).into();

        let method = request.method().clone();
        // On the wire the request names only its path; the host is in `Host`.
        let path = full_uri.path_and_query().map_or("/", |p| p.as_str());
        *request.uri_mut() = http::Uri::try_from(path).map_err(|_| Error::HttpRequestUriInvalid)?;
        let Ok(response) = tokio::time::timeout(first_byte_timeout, sender.send_request(request)).await else {
            self.refusals.push(format!("{uri}: no response within {first_byte_timeout:?}"));
            return Err(Error::ConnectionReadTimeout);
        };
        let response = response?;

        let cap = grant.policy.max_response_bytes;
        let used = self.received.load(Ordering::Relaxed);
        // HEAD, 204 and 304 answers declare a length they do not send.
        let bodiless = method == http::Method::HEAD || matches!(response.status().as_u16(), 204 | 304);
        if !bodiless
            && let Some(length) = response.headers().get(http::header::CONTENT_LENGTH)
            && let Some(length) = length.to_str().ok().and_then(|l| l.parse::<u64>().ok())
            && used.saturating_add(length) > cap
        {
            self.refusals.push(format!(
                "{uri}: the response of {length} bytes is over what is left of the call's {cap}-byte response cap"
            ));
            return Err(Error::HttpResponseBodySize(Some(cap)));
        }
        let (parts, incoming) = response.into_parts();
        let body = CappedBody {
            incoming,
            received: self.received.clone(),
            cap,
            refusals: self.refusals.clone(),
            uri,
            idle: between_bytes_timeout,
            idle_deadline: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        };
        let worker = async move {
            match connection.await {
                Ok(()) => Ok(()),
                Err(e) if e.is_timeout() => Err(Error::HttpResponseTimeout),
                Err(e) => Err(Error::from(e)),
            }
        };
        Ok((http::Response::from_parts(parts, body.boxed_unsync()), Box::new(worker)))
    }

    /// Step 3: the addresses of `host`, each one allowed.
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
        let lower = host.trim_end_matches('.').to_ascii_lowercase();
        let addresses: Vec<SocketAddr> = match self.grant.policy.resolve.get(&lower) {
            Some(fixed) => fixed.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
            None => match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| Error::DnsError { rcode: Some(e.to_string()), info_code: None })?
                    .collect(),
            },
        };
        if addresses.is_empty() {
            return Err(Error::DestinationNotFound);
        }
        for address in &addresses {
            // An address the request names itself, listed in the policy's
            // allow as that address, is the operator's explicit choice.
            let literal =
                host.parse::<IpAddr>().is_ok_and(|ip| ip == address.ip() && self.grant.explicit.contains(&ip));
            if let Some(class) = address::refusal(address.ip(), self.grant.policy.allow_private, literal) {
                let how = match class {
                    address::AddressClass::Metadata => {
                        "only a request to the address itself, listed in [network] allow, reaches it"
                    }
                    address::AddressClass::Unusable => "no policy allows it",
                    _ => "the policy's [network] allow_private is false",
                };
                let what = if host.parse::<IpAddr>().is_ok() {
                    format!("{host} is {}", class.describe())
                } else {
                    format!("{host} resolves to {}, {}", address.ip(), class.describe())
                };
                self.refusals.push(format!("{what}: {how}"));
                return Err(Error::DestinationIpProhibited);
            }
        }
        Ok(addresses)
    }
}

/// A URI as the caller may see it: scheme, host, port and path, without
/// user info or query (which may carry credentials).
fn shown(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if uri.query().is_some() { "?…" } else { "" };
    format!("{scheme}://{host}{port}{}{query}", uri.path())
}

/// Connects to the first of `addresses` that answers.
async fn connect(addresses: &[SocketAddr]) -> std::io::Result<TcpStream> {
    let mut last = None;
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address to connect to")))
}

/// The name TLS verifies: the host the tool asked for.
fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    use rustls::pki_types::ServerName;
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::from(ip)),
        Err(_) => ServerName::try_from(host.to_owned()).map_err(|_| Error::HttpRequestUriInvalid),
    }
}

/// The one TLS client configuration: the web's root certificates, ring.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .expect("ring supports the default TLS versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// A response body that counts against the call's byte cap and gives up
/// when the server pauses too long.
struct CappedBody {
    incoming: hyper::body::Incoming,
    received: Arc<AtomicU64>,
    cap: u64,
    refusals: Refusals,
    uri: String,
    idle: Duration,
    idle_deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    let total = this.received.fetch_add(len, Ordering::Relaxed) + len;
                    if total > this.cap {
                        this.refusals
                            .push(format!("{}: responses passed the call's {}-byte response cap", this.uri, this.cap));
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(this.cap)))));
                    }
                }
                let next = tokio::time::Instant::now() + this.idle;
                this.idle_deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Error::from(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.idle_deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    this.refusals.push(format!("{}: the server paused longer than {:?}", this.uri, this.idle));
                    Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.incoming.size_hint()
    }
}
