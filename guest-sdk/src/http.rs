//! Outbound HTTP for tools (feature `http`), over `wasi:http`.
//!
//! A tool that uses this imports `wasi:http`, so it must request network
//! access in its `tool.toml` (`[permissions] network = ["https://api.example.com"]`),
//! and it runs only on nodes whose policy grants those hosts. The host
//! checks every request, never follows redirects itself, and caps response
//! bytes, request count and waiting time per call; a refused request comes
//! back as an [`HttpError`] naming the `wasi:http` error code.
//!
//! ```ignore
//! let response = toolmesh_guest::http::send("GET", "https://api.example.com/v1/items", 1 << 20)?;
//! ```

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, IncomingBody, Method, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in the order received.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (any case) as text, if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http(s)://host[:port][/path]`.
    InvalidUrl(String),
    /// The host refused or could not complete the request (`HttpRequestDenied`,
    /// `DestinationIpProhibited`, `ConnectionTimeout`, …).
    Failed(String),
    /// The body was longer than the caller's limit.
    TooLarge(u64),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpError::Failed(code) => write!(f, "request failed: {code}"),
            HttpError::TooLarge(limit) => write!(f, "the response is larger than {limit} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        HttpError::Failed(format!("{code:?}"))
    }
}

/// The parts of an absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Whether it is `https`.
    pub https: bool,
    /// `host[:port]`.
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Splits `text`; the fragment is dropped.
    pub fn parse(text: &str) -> Result<Url, HttpError> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(HttpError::InvalidUrl(format!("{text:?} does not start with http:// or https://")));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let cut = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(cut);
        if authority.is_empty() || authority.contains('@') {
            return Err(HttpError::InvalidUrl(format!("{text:?} has no host, or a user name")));
        }
        let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
        Ok(Url { https, authority: authority.to_owned(), path })
    }

    /// Where `location` (a redirect's target, absolute or relative to the
    /// host) points from this URL.
    pub fn join(&self, location: &str) -> Result<Url, HttpError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            Url::parse(location)
        } else if let Some(rest) = location.strip_prefix("//") {
            Url::parse(&format!("{}://{rest}", if self.https { "https" } else { "http" }))
        } else if location.starts_with('/') {
            Ok(Url { path: location.to_owned(), ..self.clone() })
        } else {
            let base = self.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            Ok(Url { path: format!("{base}/{location}"), ..self.clone() })
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", if self.https { "https" } else { "http" }, self.authority, self.path)
    }
}

/// Sends one request without a body and reads the response, at most
/// `max_bytes` of body. Redirects are returned, not followed.
pub fn send(method: &str, url: &str, max_bytes: u64) -> Result<Response, HttpError> {
    let url = Url::parse(url)?;
    let request = OutgoingRequest::new(Fields::new());
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "PATCH" => Method::Patch,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| HttpError::InvalidUrl(format!("the host refused the {what}"));
    request.set_method(&method).map_err(|()| invalid("method"))?;
    request.set_scheme(Some(if url.https { &Scheme::Https } else { &Scheme::Http })).map_err(|()| invalid("scheme"))?;
    request.set_authority(Some(&url.authority)).map_err(|()| invalid("host"))?;
    request.set_path_with_query(Some(&url.path)).map_err(|()| invalid("path"))?;
    let pending = outgoing_handler::handle(request, None)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(result)) => result?,
        Some(Err(())) | None => return Err(HttpError::Failed("the response was already taken".into())),
    };
    let status = response.status();
    let headers = response.headers().entries();
    let body = response.consume().map_err(|()| HttpError::Failed("the body was already taken".into()))?;
    let bytes = read_body(&body, max_bytes);
    IncomingBody::finish(body);
    Ok(Response { status, headers, body: bytes? })
}

/// Reads `body` to its end, refusing more than `max_bytes`.
fn read_body(body: &IncomingBody, max_bytes: u64) -> Result<Vec<u8>, HttpError> {
    let stream = body.stream().map_err(|()| HttpError::Failed("the body stream was already taken".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => {
                if out.len() as u64 + chunk.len() as u64 > max_bytes {
                    return Err(HttpError::TooLarge(max_bytes));
                }
                out.extend_from_slice(&chunk);
            }
            Err(StreamError::Closed) => return Ok(out),
            Err(StreamError::LastOperationFailed(error)) => {
                let code = wasip2::http::types::http_error_code(&error);
                return Err(HttpError::Failed(match code {
                    Some(code) => format!("{code:?}"),
                    // The host's own words; its first line is the message.
                    None => error.to_debug_string().lines().next().unwrap_or_default().to_owned(),
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_and_redirects_resolve() {
        let url = Url::parse("https://api.example.com:8443/v1/items?q=1#frag").unwrap();
        assert_eq!(
            (url.https, url.authority.as_str(), url.path.as_str()),
            (true, "api.example.com:8443", "/v1/items?q=1")
        );
        assert_eq!(Url::parse("http://h").unwrap().path, "/");
        assert_eq!(url.join("/other").unwrap().to_string(), "https://api.example.com:8443/other");
        assert_eq!(url.join("next").unwrap().to_string(), "https://api.example.com:8443/v1/next");
        assert_eq!(url.join("http://elsewhere/x").unwrap().to_string(), "http://elsewhere/x");
        assert_eq!(url.join("//cdn.example.com/y").unwrap().to_string(), "https://cdn.example.com/y");
        for bad in ["ftp://x", "https://", "https://user@host/", "example.com"] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
