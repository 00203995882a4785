//! How a registry client proves who it is: a fixed bearer token (a
//! toolmesh registry's push token), Basic credentials (htpasswd), or the
//! OCI / Docker token flow, in which a `401` names a token service
//! (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`) that trades
//! credentials for a short-lived token per scope.

use std::collections::BTreeMap;

/// A client's credentials.
#[derive(Clone, Default)]
pub enum Credentials {
    /// None: anonymous pulls (and anonymous tokens where a registry gives them).
    #[default]
    Anonymous,
    /// A bearer token sent with every request.
    Token(String),
    /// A user name and password: sent as Basic, and to token services.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Token(_) => f.write_str("Token(…)"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user}, …)"),
        }
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower case.
    pub scheme: String,
    /// Its parameters (`realm`, `service`, `scope`), names in lower case.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Parses one challenge, such as `Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        if scheme.is_empty() {
            return None;
        }
        let mut params = BTreeMap::new();
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
            if name.trim().is_empty() {
                break;
            }
            if chars.next() != Some('=') {
                return None;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next()? {
                        '\\' => value.push(chars.next()?),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_owned();
            }
            params.insert(name.trim().to_ascii_lowercase(), value);
        }
        Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
    }

    /// The token service's URL for this challenge (realm with service and
    /// scope as query parameters), if it is a Bearer challenge.
    pub fn token_url(&self) -> Option<reqwest::Url> {
        if self.scheme != "bearer" {
            return None;
        }
        let mut url = reqwest::Url::parse(self.params.get("realm")?).ok()?;
        if !matches!(url.scheme(), "https" | "http") {
            return None;
        }
        {
            let mut query = url.query_pairs_mut();
            for key in ["service", "scope"] {
                if let Some(value) = self.params.get(key) {
                    for part in value.split(' ').filter(|p| !p.is_empty()) {
                        query.append_pair(key, part);
                    }
                }
            }
        }
        Some(url)
    }
}

/// The scope a request to `path` needs (what a token is cached under).
pub fn scope_of(method: &reqwest::Method, path: &str) -> String {
    let Some(rest) = path.strip_prefix("/v2/").filter(|r| !r.is_empty()) else { return String::new() };
    if rest.starts_with("_catalog") {
        return "registry:catalog:*".into();
    }
    let repo = ["/blobs/", "/manifests/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|marker| rest.find(marker))
        .min()
        .map_or(rest, |end| &rest[..end]);
    let actions = if matches!(*method, reqwest::Method::GET | reqwest::Method::HEAD) { "pull" } else { "pull,push" };
    format!("repository:{repo}:{actions}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas() {
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let url = c.token_url().unwrap();
        assert_eq!(
            url.as_str(),
            "https://auth.example/token?service=registry.example&scope=repository%3Aa%2Fb%3Apull%2Cpush"
        );
        let basic = Challenge::parse(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!((basic.scheme.as_str(), basic.params["realm"].as_str()), ("basic", "Registry Realm"));
        assert!(basic.token_url().is_none());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
        assert!(Challenge::parse(r#"Bearer realm="file:///etc/passwd""#).unwrap().token_url().is_none());
    }

    #[test]
    fn scopes_follow_the_path_and_method() {
        use reqwest::Method;
        assert_eq!(scope_of(&Method::GET, "/v2/a/b/manifests/1.0"), "repository:a/b:pull");
        assert_eq!(scope_of(&Method::PUT, "/v2/a/b/blobs/uploads/x"), "repository:a/b:pull,push");
        assert_eq!(scope_of(&Method::GET, "/v2/_catalog?n=100"), "registry:catalog:*");
        assert_eq!(scope_of(&Method::GET, "/v2/"), "");
        assert_eq!(scope_of(&Method::GET, "/toolmesh/v1/catalog"), "");
    }
}
