//! Which `Host` and `Origin` headers the gateway's own HTTP routes accept
//! (`/mcp` has rmcp's checks; `/a2a` and the listings these), against DNS
//! rebinding and calls from web pages of other sites.
//!
//! Allowed hosts are `host` (any port) or `host:port`; allowed origins
//! `scheme://host[:port]`, or `scheme://host:*` for any port.

use axum::http::{HeaderMap, header};

/// A host name as compared: lower case, without IPv6 brackets.
fn normal(host: &str) -> String {
    host.trim_matches(|c| c == '[' || c == ']').to_ascii_lowercase()
}

/// `authority` split into its normal host and its port.
fn split(authority: &str) -> Option<(String, Option<u16>)> {
    let parsed = authority.parse::<axum::http::uri::Authority>().ok()?;
    Some((normal(parsed.host()), parsed.port_u16()))
}

/// Whether the request's `Host` is one of `allowed` (every host when
/// `allowed` is empty); a request without one is refused.
pub(crate) fn host_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some((host, port)) = headers.get(header::HOST).and_then(|h| h.to_str().ok()).and_then(split) else {
        return false;
    };
    allowed
        .iter()
        .filter_map(|a| split(a.trim()).or_else(|| Some((normal(a.trim()), None))))
        .any(|(h, p)| h == host && p.is_none_or(|p| Some(p) == port))
}

/// Whether the request's `Origin`, if it has one, is one of `allowed`.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let Some((scheme, authority)) = origin.to_str().ok().and_then(|o| o.split_once("://")) else { return false };
    let Some((host, port)) = split(authority) else { return false };
    allowed.iter().any(|pattern| {
        let Some((a_scheme, rest)) = pattern.trim().split_once("://") else { return false };
        if !a_scheme.eq_ignore_ascii_case(scheme) {
            return false;
        }
        match rest.strip_suffix(":*") {
            Some(any_port) => normal(any_port) == host,
            None => split(rest).is_some_and(|(h, p)| h == host && p == port),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn hosts_and_origins_are_matched_as_configured() {
        let hosts =
            ["localhost".to_owned(), "127.0.0.1".to_owned(), "[::1]".to_owned(), "mesh.example:8443".to_owned()];
        assert!(host_allowed(&headers(&[("host", "127.0.0.1:8080")]), &hosts));
        assert!(host_allowed(&headers(&[("host", "[::1]:80")]), &hosts));
        assert!(host_allowed(&headers(&[("host", "mesh.example:8443")]), &hosts));
        assert!(!host_allowed(&headers(&[("host", "mesh.example:9000")]), &hosts));
        assert!(!host_allowed(&headers(&[("host", "attacker.example")]), &hosts));
        assert!(!host_allowed(&headers(&[]), &hosts));
        let origins = ["http://localhost:*".to_owned(), "https://mesh.example".to_owned()];
        assert!(origin_allowed(&headers(&[]), &origins), "no Origin: not a browser's cross-site call");
        assert!(origin_allowed(&headers(&[("origin", "http://localhost:3000")]), &origins));
        assert!(origin_allowed(&headers(&[("origin", "https://mesh.example")]), &origins));
        assert!(!origin_allowed(&headers(&[("origin", "https://attacker.example")]), &origins));
        assert!(!origin_allowed(&headers(&[("origin", "null")]), &origins));
    }
}
