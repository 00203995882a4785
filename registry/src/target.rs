//! Where outbound HTTP may go, as written by publishers and operators:
//! schemes, host patterns (`api.example.com`, `*.example.org`, an IP
//! address) and targets (`[scheme://]host[:port]`).

use crate::request::RequestError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A URL scheme outbound HTTP may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme's name, as in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Hosts a rule applies to: one name, every subdomain of a domain
/// (`*.example.org`, not `example.org` itself), or one IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostPattern {
    /// Exactly this name (lower case, no trailing dot).
    Name(String),
    /// Any name ending in `.` and this domain.
    Subdomains(String),
    /// This address, written as an IP literal.
    Ip(IpAddr),
}

impl HostPattern {
    /// Whether the host of a URL (a name or an IP literal, IPv6 in
    /// brackets or not) is one this pattern allows.
    pub fn matches(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match self {
            HostPattern::Name(name) => *name == host,
            HostPattern::Subdomains(domain) => {
                host.len() > domain.len() + 1 && host.ends_with(domain.as_str()) && {
                    let cut = host.len() - domain.len() - 1;
                    host.as_bytes()[cut] == b'.'
                }
            }
            HostPattern::Ip(ip) => bare.parse::<IpAddr>().is_ok_and(|h| h == *ip),
        }
    }

    /// Whether every host `other` allows, this allows too.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Subdomains(mine), HostPattern::Subdomains(theirs)) => {
                mine == theirs || HostPattern::Subdomains(mine.clone()).matches(theirs)
            }
            (_, HostPattern::Subdomains(_)) => false,
            (HostPattern::Ip(mine), HostPattern::Ip(theirs)) => mine == theirs,
            (_, HostPattern::Ip(_)) | (HostPattern::Ip(_), _) => false,
            (_, HostPattern::Name(name)) => self.matches(name),
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Name(name) => f.write_str(name),
            HostPattern::Subdomains(domain) => write!(f, "*.{domain}"),
            HostPattern::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            HostPattern::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl FromStr for HostPattern {
    type Err = RequestError;

    fn from_str(text: &str) -> Result<Self, RequestError> {
        let bad = |why: &str| RequestError::Invalid(format!("{text:?} is not a host: {why}"));
        let lower = text.trim_end_matches('.').to_ascii_lowercase();
        let unbracketed = lower.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
        if let Ok(ip) = unbracketed.unwrap_or(&lower).parse::<IpAddr>() {
            return Ok(HostPattern::Ip(ip));
        }
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, lower.as_str()),
        };
        if name.is_empty() || name.len() > 253 {
            return Err(bad("empty or too long"));
        }
        for label in name.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad("each dot-separated part must be 1-63 letters, digits or inner hyphens"));
            }
        }
        // No top-level domain starts with a digit; numeric shorthands of
        // addresses (`2130706433`, `0x7f000001`, `127.1`) do.
        if name.split('.').next_back().is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_digit())) {
            return Err(bad("a name cannot end in a number (write IP addresses in full)"));
        }
        Ok(if wild { HostPattern::Subdomains(name.to_owned()) } else { HostPattern::Name(name.to_owned()) })
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A target written as text: `[scheme://]host[:port]`, such as
/// `https://api.example.com`, `*.example.org` or `127.0.0.1:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The scheme, if written.
    pub scheme: Option<Scheme>,
    /// The hosts.
    pub host: HostPattern,
    /// The port, if written.
    pub port: Option<u16>,
}

impl FromStr for Target {
    type Err = RequestError;

    fn from_str(text: &str) -> Result<Self, RequestError> {
        let (scheme, rest) = match text.split_once("://") {
            Some(("http", rest)) => (Some(Scheme::Http), rest),
            Some(("https", rest)) => (Some(Scheme::Https), rest),
            Some((other, _)) => {
                return Err(RequestError::Invalid(format!("{text:?}: scheme {other:?} is not http or https")));
            }
            None => (None, text),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(RequestError::Invalid(format!("{text:?}: give a host, not a URL with a path or user")));
        }
        // `[v6]:port`, `host:port`, or a bare host (a bare IPv6 address has
        // several colons and no port).
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| RequestError::Invalid(format!("{text:?}: {port:?} is not a port")))?;
                (host, Some(port))
            }
            _ => (rest, None),
        };
        Ok(Target { scheme, host: host.parse()?, port })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = self.scheme {
            write!(f, "{}://", scheme.as_str())?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> HostPattern {
        text.parse().unwrap()
    }

    #[test]
    fn host_patterns_match_names_subdomains_and_addresses() {
        assert!(host("api.example.com").matches("API.example.com."));
        assert!(!host("api.example.com").matches("xapi.example.com"));
        let wild = host("*.example.org");
        assert!(wild.matches("a.example.org") && wild.matches("a.b.example.org"));
        assert!(!wild.matches("example.org") && !wild.matches("evilexample.org") && !wild.matches("example.org.evil"));
        assert!(host("127.0.0.1").matches("127.0.0.1") && !host("127.0.0.1").matches("localhost"));
        assert!(host("[::1]").matches("[::1]") && host("::1").matches("::1"));
        for bad in [
            "",
            "a b",
            "-x.com",
            "x-.com",
            "x..com",
            "*",
            "*.",
            "a.*.com",
            "1.2.3",
            "café.com",
            "0x7f000001",
            "2130706433",
        ] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn wider_patterns_cover_narrower_ones() {
        assert!(host("*.example.org").covers(&host("a.example.org")));
        assert!(host("*.example.org").covers(&host("*.a.example.org")));
        assert!(host("*.example.org").covers(&host("*.example.org")));
        assert!(!host("*.example.org").covers(&host("example.org")));
        assert!(!host("a.example.org").covers(&host("*.example.org")));
        assert!(!host("localhost").covers(&host("127.0.0.1")));
        assert!(host("10.0.0.1").covers(&host("10.0.0.1")));
    }

    #[test]
    fn targets_parse_with_optional_scheme_and_port() {
        let t: Target = "https://api.example.com".parse().unwrap();
        assert_eq!((t.scheme, t.port), (Some(Scheme::Https), None));
        let t: Target = "127.0.0.1:8080".parse().unwrap();
        assert_eq!((t.host, t.port), (HostPattern::Ip([127, 0, 0, 1].into()), Some(8080)));
        let t: Target = "[::1]:9".parse().unwrap();
        assert_eq!(t.port, Some(9));
        assert_eq!("::1".parse::<Target>().unwrap().port, None);
        for bad in ["ftp://x.com", "https://x.com/path", "x.com:0", "x.com:http", "user@x.com"] {
            assert!(bad.parse::<Target>().is_err(), "{bad}");
        }
    }
}
