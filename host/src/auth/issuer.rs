//! A trusted issuer's signing keys: found through its metadata (RFC 8414,
//! or OpenID discovery) and its JWKS, cached, and fetched again when a
//! token names a key the cache does not hold — at most once per
//! [`REFETCH_AFTER`], so tokens with made-up key ids cannot make this
//! server hammer the identity provider.

use super::AuthError;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Least time between two fetches of an issuer's keys, whether the last
/// one worked or not.
pub const REFETCH_AFTER: Duration = Duration::from_secs(5);

/// How long fetched keys are used before they are fetched again (so a key
/// the issuer retired stops working even when no token names a new one).
pub const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);

/// How long keys are still used while the issuer cannot be reached: an
/// outage of the identity provider does not sign everybody out at once.
pub const KEYS_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Longest one fetch of the metadata and keys may take, all requests together.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest metadata document or key set read.
const MAX_DOCUMENT: usize = 1 << 20;

/// One key of the set.
struct Key {
    id: Option<String>,
    /// The algorithm the key is for, when the set says.
    algorithm: Option<Algorithm>,
    key: DecodingKey,
}

/// The keys held, when they were fetched, and when a fetch was last tried.
#[derive(Default)]
struct Held {
    keys: Arc<Vec<Key>>,
    fetched: Option<Instant>,
    tried: Option<Instant>,
}

impl Held {
    /// Whether the keys are young enough to be used without a fetch.
    fn fresh(&self) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() < KEYS_MAX_AGE)
    }

    /// Whether the keys may still be used, a fetch having failed.
    fn usable(&self) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() < KEYS_GRACE)
    }
}

/// One issuer's metadata and keys.
pub struct Issuer {
    /// Its identifier, as tokens' `iss` must name it.
    pub id: String,
    http: reqwest::Client,
    held: RwLock<Held>,
    /// Held while fetching, so concurrent misses fetch once; the key set's
    /// address once the metadata gave it.
    fetching: tokio::sync::Mutex<Option<String>>,
}

impl Issuer {
    /// An issuer identified by `id` (checked: `https://`, or `http://` on a
    /// loopback host), whose keys are fetched on first use.
    pub fn new(id: &str, http: reqwest::Client) -> Result<Self, String> {
        check_id(id)?;
        Ok(Issuer { id: id.to_owned(), http, held: RwLock::default(), fetching: tokio::sync::Mutex::new(None) })
    }

    /// The key for a token signed with `algorithm` by the key `kid`,
    /// fetching the set when it is old or does not hold the key — at most
    /// once per [`REFETCH_AFTER`], successful or not, and within
    /// [`FETCH_TIMEOUT`].
    pub async fn key(&self, kid: Option<&str>, algorithm: Algorithm) -> Result<DecodingKey, AuthError> {
        {
            let held = self.held.read().unwrap_or_else(|e| e.into_inner());
            if held.fresh()
                && let Some(found) = pick(&held.keys, kid, algorithm)?
            {
                return Ok(found);
            }
        }
        let mut jwks_uri = self.fetching.lock().await;
        let due = {
            let held = self.held.read().unwrap_or_else(|e| e.into_inner());
            // Another request may have fetched while this one waited.
            if held.fresh()
                && let Some(found) = pick(&held.keys, kid, algorithm)?
            {
                return Ok(found);
            }
            held.tried.is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
        };
        if due {
            self.held.write().unwrap_or_else(|e| e.into_inner()).tried = Some(Instant::now());
            let fetched = tokio::time::timeout(FETCH_TIMEOUT, self.fetch(&mut jwks_uri))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())));
            match fetched {
                Ok(keys) => {
                    let mut held = self.held.write().unwrap_or_else(|e| e.into_inner());
                    held.keys = Arc::new(keys);
                    held.fetched = Some(Instant::now());
                }
                Err(problem) => tracing::warn!(issuer = %self.id, problem, "cannot fetch the issuer's keys"),
            }
        }
        drop(jwks_uri);
        let held = self.held.read().unwrap_or_else(|e| e.into_inner());
        if !held.usable() {
            return Err(AuthError::Unavailable(format!("the keys of {} cannot be fetched now", self.id)));
        }
        pick(&held.keys, kid, algorithm)?.ok_or_else(|| {
            AuthError::InvalidToken(match kid {
                Some(_) => "the issuer has no key of that id (kid)".into(),
                None => "the token names no key (kid) and the issuer has several".into(),
            })
        })
    }

    /// Fetches the key set, finding its address first if `jwks_uri` is not known yet.
    async fn fetch(&self, jwks_uri: &mut Option<String>) -> Result<Vec<Key>, String> {
        if jwks_uri.is_none() {
            *jwks_uri = Some(self.discover().await?);
        }
        let uri = jwks_uri.as_deref().unwrap_or_default();
        let keys = parse_set(&self.get_json(uri).await?);
        tracing::info!(issuer = %self.id, keys = keys.len(), "fetched the issuer's signing keys");
        Ok(keys)
    }

    /// The `jwks_uri` of the issuer's metadata.
    async fn discover(&self) -> Result<String, String> {
        let (url, doc) = self.metadata().await?;
        doc["jwks_uri"].as_str().map(str::to_owned).ok_or_else(|| format!("{url} has no jwks_uri"))
    }

    /// The issuer's metadata (RFC 8414 or OpenID discovery) and where it
    /// was found: the first of the well-known addresses that answers with
    /// metadata naming this issuer.
    pub async fn metadata(&self) -> Result<(String, serde_json::Value), String> {
        let mut problems = Vec::new();
        for url in metadata_urls(&self.id) {
            match self.get_json(&url).await {
                Ok(doc) if doc["issuer"].as_str() != Some(self.id.as_str()) => {
                    problems.push(format!("{url} names the issuer {}", doc["issuer"]));
                }
                Ok(doc) => return Ok((url, doc)),
                Err(e) => problems.push(e),
            }
        }
        Err(problems.join("; "))
    }

    /// A JSON document from `url`, at most 1 MiB.
    pub async fn get_json(&self, url: &str) -> Result<serde_json::Value, String> {
        let response =
            self.http.get(url).header("accept", "application/json").send().await.map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
            return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| format!("{url}: {e}"))? {
            if body.len() + chunk.len() > MAX_DOCUMENT {
                return Err(format!("{url}: larger than {MAX_DOCUMENT} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))
    }
}

/// The key of `keys` that verifies `algorithm` signatures by `kid`: the one
/// with that id, or without an id the only key there is. A key set for
/// another algorithm does not verify this one.
fn pick(keys: &[Key], kid: Option<&str>, algorithm: Algorithm) -> Result<Option<DecodingKey>, AuthError> {
    let named: Vec<&Key> = match kid {
        Some(kid) => keys.iter().filter(|k| k.id.as_deref() == Some(kid)).collect(),
        None if keys.len() == 1 => keys.iter().collect(),
        None => Vec::new(),
    };
    if let Some(key) = named.iter().find(|k| k.algorithm.is_none_or(|a| a == algorithm)) {
        return Ok(Some(key.key.clone()));
    }
    match named.first() {
        Some(key) => Err(AuthError::InvalidToken(format!(
            "the token is signed with {algorithm:?} but its key is for {:?}",
            key.algorithm.unwrap_or(algorithm)
        ))),
        None => Ok(None),
    }
}

/// The signing keys of a JWKS document; keys for encryption, of unknown
/// types or malformed are left out.
fn parse_set(set: &serde_json::Value) -> Vec<Key> {
    let Some(keys) = set["keys"].as_array() else { return Vec::new() };
    keys.iter()
        .filter_map(|value| {
            let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
            // Symmetric keys are secrets, never published: one in a key set
            // would let anyone who reads the set sign tokens.
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
            {
                return None;
            }
            let algorithm = match value.get("alg").and_then(|a| a.as_str()) {
                Some(name) => Some(name.parse::<Algorithm>().ok()?),
                None => None,
            };
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some(Key { id: jwk.common.key_id.clone(), algorithm, key })
        })
        .collect()
}

/// Checks that `id` can identify an issuer: an `https://` URL (`http://`
/// on a loopback host) without query or fragment.
pub fn check_id(id: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(id).map_err(|e| format!("`{id}` is not a URL: {e}"))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(format!("`{id}` is not an https:// URL (plain http is allowed on loopback only)"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{id}`: an issuer has no query or fragment"));
    }
    Ok(())
}

/// Where an issuer's metadata may be, in the order tried: RFC 8414's
/// address (the well-known part before the issuer's path), OpenID
/// Connect's (after it), and RFC 8414's form for OpenID metadata.
fn metadata_urls(issuer: &str) -> Vec<String> {
    let (origin, path) = super::origin_and_path(issuer);
    let path = path.trim_end_matches('/');
    let mut urls = vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ];
    if !path.is_empty() {
        urls.push(format!("{origin}/.well-known/openid-configuration{path}"));
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_looked_for_where_both_specs_put_it() {
        assert_eq!(
            metadata_urls("https://id.example.com"),
            [
                "https://id.example.com/.well-known/oauth-authorization-server",
                "https://id.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://login.example.com/tenant/v2.0/"),
            [
                "https://login.example.com/.well-known/oauth-authorization-server/tenant/v2.0",
                "https://login.example.com/tenant/v2.0/.well-known/openid-configuration",
                "https://login.example.com/.well-known/openid-configuration/tenant/v2.0",
            ]
        );
    }

    #[test]
    fn issuers_are_https_but_on_loopback() {
        let http = toolmesh_registry::client::http_builder().build().unwrap();
        assert!(Issuer::new("https://id.example.com", http.clone()).is_ok());
        assert!(Issuer::new("http://127.0.0.1:9000", http.clone()).is_ok());
        assert!(Issuer::new("http://localhost:9000/realms/team", http.clone()).is_ok());
        for bad in ["http://id.example.com", "id.example.com", "https://id.example.com/?x=1", "ftp://x"] {
            assert!(Issuer::new(bad, http.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_sets_keep_signing_keys_only() {
        let set = serde_json::json!({"keys": [
            // An Ed25519 key for EdDSA.
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            // An encryption key, a symmetric key and nonsense.
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "odd-alg", "alg": "none",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]});
        let keys = parse_set(&set);
        let ids: Vec<_> = keys.iter().map(|k| k.id.as_deref().unwrap_or_default()).collect();
        assert!(ids.contains(&"ed") && !ids.contains(&"enc") && !ids.contains(&"broken") && !ids.contains(&"odd-alg"));
        assert!(!ids.contains(&"secret"), "a symmetric key is never a verifying key");
        assert!(pick(&keys, Some("ed"), Algorithm::EdDSA).unwrap().is_some());
        assert!(pick(&keys, Some("ed"), Algorithm::ES256).is_err(), "a key for EdDSA does not verify ES256");
        assert!(pick(&keys, Some("other"), Algorithm::EdDSA).unwrap().is_none());
    }
}
