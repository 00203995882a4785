//! Who is calling, and what they may call: the MCP endpoint as an OAuth 2.1
//! resource server (the MCP authorization spec), beside static API keys.
//!
//! - [`issuer`]: a trusted issuer's signing keys (metadata discovery, JWKS
//!   cache, bounded refetch).
//! - [`token`]: checks a JWT access token (algorithm allow-list, signature,
//!   `iss`, `aud`, `exp`/`nbf`) and reads its subject, scopes and groups.
//! - [`introspect`]: checks an opaque access token by asking its issuer
//!   (RFC 7662).
//! - [`access`]: the policy mapping scopes and groups to tools.
//!
//! An [`Authenticator`] turns a request's bearer credential into a
//! [`Caller`]; the HTTP edge refuses what it cannot, with the
//! `WWW-Authenticate` challenges clients follow to sign in
//! ([`Authenticator::challenge`]) or to ask for more scopes. Tokens are read
//! from the `Authorization` header only, and go nowhere else: calls carry
//! the caller's name, never its credential.

pub mod access;
pub mod introspect;
pub mod issuer;
pub mod token;

use access::{AccessPolicy, Claims};
use issuer::Issuer;
use std::collections::BTreeSet;
use std::sync::Arc;
use toolmesh_registry::api::constant_eq;
use toolmesh_registry::digest::Digest;

/// Why a credential was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credential was presented.
    #[error("sign in: this server needs an access token or API key (Authorization: Bearer …)")]
    Missing,
    /// The credential is not a valid token or key (`401 invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The issuer's keys cannot be fetched, so a token cannot be checked
    /// now (`503`).
    #[error("{0}; try again later")]
    Unavailable(String),
}

/// Settings of the OAuth resource server.
#[derive(Debug, Clone, Default)]
pub struct OAuthConfig {
    /// Issuers whose access tokens are accepted.
    pub issuers: Vec<String>,
    /// This server's resource identifier: its MCP endpoint's URL
    /// (`<public-url>/mcp`), the audience tokens must name.
    pub resource: String,
    /// Further audiences accepted, for identity providers that cannot put
    /// the resource in `aud`.
    pub audiences: Vec<String>,
    /// The client to introspect opaque tokens as, at the first issuer;
    /// without one only JWT access tokens are accepted.
    pub introspection: Option<introspect::IntrospectionClient>,
}

/// How the edge identifies callers.
pub struct Authenticator {
    /// API keys and their names in logs.
    keys: Vec<(String, String)>,
    issuers: Vec<Issuer>,
    /// Checks opaque tokens with the first issuer, when configured.
    introspector: Option<introspect::Introspector>,
    /// The resource identifier and the other accepted audiences.
    audiences: Vec<String>,
    access: Option<Arc<AccessPolicy>>,
    /// Where the protected resource metadata is, for challenges.
    metadata_url: Option<String>,
}

/// Who is calling, as the edge established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Its name in logs and metering: the token's subject, `key:<hash>` for
    /// an API key, `local` when no credential is asked for, `stdio`.
    pub name: String,
    /// What it may call.
    pub access: Access,
    /// Whether an access token identified it (rather than an API key,
    /// or being local): such a caller sees only its own usage.
    pub signed_in: bool,
}

/// Which tools a caller may call.
#[derive(Debug, Clone)]
pub enum Access {
    /// Every tool (API keys, local and stdio callers, tokens without a policy).
    All,
    /// Those `policy` allows for `claims`.
    Claims {
        /// What the caller's token holds.
        claims: Claims,
        /// The policy that decides.
        policy: Arc<AccessPolicy>,
    },
}

impl Caller {
    /// A caller that may call everything.
    pub fn unrestricted(name: &str) -> Self {
        Caller { name: name.to_owned(), access: Access::All, signed_in: false }
    }

    /// Whether this caller may call `tool` (a catalog name).
    pub fn may_call(&self, tool: &str) -> bool {
        match &self.access {
            Access::All => true,
            Access::Claims { claims, policy } => policy.allows(claims, tool),
        }
    }

    /// The scopes any one of which would let this caller call `tool`.
    pub fn scopes_to_call(&self, tool: &str) -> BTreeSet<String> {
        match &self.access {
            Access::All => BTreeSet::new(),
            Access::Claims { policy, .. } => policy.scopes_for(tool),
        }
    }

    /// The scope to ask the user for to call `tool` (step-up), if a scope
    /// can allow it at all.
    pub fn scope_to_ask(&self, tool: &str) -> Option<String> {
        match &self.access {
            Access::All => None,
            Access::Claims { policy, .. } => policy.scope_to_ask(tool).map(str::to_owned),
        }
    }

    /// A caller the edge did not identify: it may call nothing.
    pub fn nobody() -> Self {
        Caller {
            signed_in: false,
            name: "unidentified".into(),
            access: Access::Claims { claims: Claims::default(), policy: Arc::new(AccessPolicy::default()) },
        }
    }
}

impl Authenticator {
    /// Identifies callers by `api_keys` and, with `oauth`, by access tokens
    /// of its issuers, which `access` (if any) limits to some tools.
    pub fn new(api_keys: &[String], oauth: Option<&OAuthConfig>, access: Option<AccessPolicy>) -> Result<Self, String> {
        let keys = api_keys.iter().map(|k| (k.clone(), key_id(k))).collect();
        let Some(oauth) = oauth else {
            return Ok(Authenticator {
                keys,
                issuers: Vec::new(),
                introspector: None,
                audiences: Vec::new(),
                access: None,
                metadata_url: None,
            });
        };
        let http = toolmesh_registry::client::http_builder()
            .user_agent(concat!("toolmesh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let issuers = oauth
            .issuers
            .iter()
            .map(|id| Issuer::new(id, http.clone()).map_err(|e| format!("--oauth-issuer: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let audiences = std::iter::once(oauth.resource.clone()).chain(oauth.audiences.iter().cloned()).collect();
        let introspector = oauth.introspection.clone().map(|client| introspect::Introspector::new(client, http));
        Ok(Authenticator {
            keys,
            issuers,
            introspector,
            audiences,
            access: access.map(Arc::new),
            metadata_url: Some(metadata_url(&oauth.resource)),
        })
    }

    /// Whether any credential is asked for.
    pub fn required(&self) -> bool {
        !self.keys.is_empty() || !self.issuers.is_empty()
    }

    /// Whether access tokens are accepted.
    pub fn oauth(&self) -> bool {
        !self.issuers.is_empty()
    }

    /// The caller presenting `bearer` (the `Authorization: Bearer` value, if any).
    pub async fn identify(&self, bearer: Option<&str>) -> Result<Caller, AuthError> {
        if !self.required() {
            return Ok(Caller::unrestricted("local"));
        }
        let bearer = bearer.ok_or(AuthError::Missing)?;
        if let Some((_, name)) = self.keys.iter().find(|(key, _)| constant_eq(key, bearer)) {
            return Ok(Caller::unrestricted(name));
        }
        if self.issuers.is_empty() {
            return Err(AuthError::InvalidToken("not a valid API key".into()));
        }
        let verified = match &self.introspector {
            Some(introspector) if !introspect::is_jwt(bearer) => {
                introspector.verify(bearer, &self.issuers[0], &self.audiences).await?
            }
            _ => token::verify(bearer, &self.issuers, &self.audiences).await?,
        };
        // With several issuers, a subject is only unique within its issuer.
        let name = if self.issuers.len() == 1 {
            verified.subject
        } else {
            format!("{}#{}", verified.issuer, verified.subject)
        };
        let access = match &self.access {
            Some(policy) => Access::Claims { claims: verified.claims, policy: policy.clone() },
            None => Access::All,
        };
        Ok(Caller { name, access, signed_in: true })
    }

    /// The `WWW-Authenticate` value of a `401`: where to find how to sign
    /// in, the scopes to ask for, and what was wrong with the credential.
    pub fn challenge(&self, error: &AuthError) -> String {
        let mut value = String::from("Bearer");
        let mut params = Vec::new();
        if let Some(url) = &self.metadata_url {
            params.push(format!("resource_metadata=\"{url}\""));
            let scopes = self.scopes();
            if !scopes.is_empty() {
                params.push(format!("scope=\"{}\"", scopes.into_iter().collect::<Vec<_>>().join(" ")));
            }
        }
        if let AuthError::InvalidToken(why) = error {
            params.push("error=\"invalid_token\"".into());
            params.push(format!("error_description=\"{}\"", description(why)));
        }
        if !params.is_empty() {
            value.push(' ');
            value.push_str(&params.join(", "));
        }
        value
    }

    /// The `WWW-Authenticate` value of a `403` for a caller that lacks the
    /// scope `needed`.
    pub fn insufficient_scope(&self, needed: &str) -> String {
        let mut params = vec!["error=\"insufficient_scope\"".to_owned(), format!("scope=\"{needed}\"")];
        if let Some(url) = &self.metadata_url {
            params.push(format!("resource_metadata=\"{url}\""));
        }
        format!("Bearer {}", params.join(", "))
    }

    /// The scopes the access policy names.
    pub fn scopes(&self) -> BTreeSet<String> {
        self.access.as_ref().map(|a| a.scopes()).unwrap_or_default()
    }

    /// The protected resource metadata (RFC 9728) of this server, when it
    /// accepts access tokens.
    pub fn resource_metadata(&self) -> Option<serde_json::Value> {
        let resource = self.audiences.first().filter(|_| self.oauth())?;
        let mut doc = serde_json::json!({
            "resource": resource,
            "authorization_servers": self.issuers.iter().map(|i| &i.id).collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
            "resource_name": "toolmesh",
        });
        let scopes = self.scopes();
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        Some(doc)
    }
}

/// `text` as an `error_description`: the characters RFC 6750 allows
/// there, at most 200.
fn description(text: &str) -> String {
    text.chars().map(|c| if matches!(c, ' ' | '!' | '#'..='[' | ']'..='~') { c } else { '\'' }).take(200).collect()
}

/// A key's public name in logs: the start of its sha256.
pub fn key_id(key: &str) -> String {
    format!("key:{}", &Digest::of(key.as_bytes()).hex()[..12])
}

/// Where the metadata of `resource` is (RFC 9728: the well-known part goes
/// between the origin and the resource's path).
fn metadata_url(resource: &str) -> String {
    let (origin, path) = origin_and_path(resource);
    format!("{origin}/.well-known/oauth-protected-resource{path}")
}

/// `url` split before its path: (`scheme://authority`, `/path` or ``),
/// where the well-known addresses of RFC 8414 and RFC 9728 go between.
fn origin_and_path(url: &str) -> (&str, &str) {
    match url.find("://").and_then(|s| url[s + 3..].find('/').map(|p| s + 3 + p)) {
        Some(at) => url.split_at(at),
        None => (url, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> OAuthConfig {
        OAuthConfig {
            issuers: vec!["https://id.example.com".into()],
            resource: "https://tools.example.com/mcp".into(),
            audiences: vec!["api://toolmesh".into()],
            introspection: None,
        }
    }

    #[test]
    fn key_ids_do_not_reveal_keys() {
        let id = key_id("secret-key");
        assert!(id.starts_with("key:") && !id.contains("secret"));
        assert_eq!(id, key_id("secret-key"));
    }

    #[test]
    fn metadata_names_the_resource_issuers_and_scopes() {
        let access = AccessPolicy::parse("[[allow]]\nscopes = [\"tools:read\"]\ntools = [\"*\"]\n").unwrap();
        let auth = Authenticator::new(&[], Some(&oauth()), Some(access)).unwrap();
        let doc = auth.resource_metadata().unwrap();
        assert_eq!(doc["resource"], "https://tools.example.com/mcp");
        assert_eq!(doc["authorization_servers"], serde_json::json!(["https://id.example.com"]));
        assert_eq!(doc["scopes_supported"], serde_json::json!(["tools:read"]));
        let challenge = auth.challenge(&AuthError::Missing);
        assert_eq!(
            challenge,
            "Bearer resource_metadata=\"https://tools.example.com/.well-known/oauth-protected-resource/mcp\", \
             scope=\"tools:read\""
        );
        let refused = auth.challenge(&AuthError::InvalidToken("the \"aud\" is wrong".into()));
        assert!(refused.ends_with("error=\"invalid_token\", error_description=\"the 'aud' is wrong\""), "{refused}");
        let step_up = auth.insufficient_scope("a");
        assert!(step_up.starts_with("Bearer error=\"insufficient_scope\", scope=\"a\", resource_metadata="));
        let odd = auth.challenge(&AuthError::InvalidToken("kid \u{7f}\"ü\"\\ \r\n".to_owned() + &"x".repeat(300)));
        let value = odd.split("error_description=\"").nth(1).unwrap().trim_end_matches('"');
        assert!(value.len() == 200 && value.starts_with("kid ''''' ''x"), "{value}");
        assert!(axum::http::HeaderValue::from_str(&odd).is_ok());
    }

    #[tokio::test]
    async fn keys_and_tokens_side_by_side() {
        let keys = ["k1".to_owned()];
        let only_keys = Authenticator::new(&keys, None, None).unwrap();
        assert!(only_keys.resource_metadata().is_none());
        assert_eq!(only_keys.challenge(&AuthError::Missing), "Bearer");
        assert!(matches!(only_keys.identify(Some("k2")).await, Err(AuthError::InvalidToken(_))));
        assert!(matches!(only_keys.identify(None).await, Err(AuthError::Missing)));
        let both = Authenticator::new(&keys, Some(&oauth()), None).unwrap();
        let caller = both.identify(Some("k1")).await.unwrap();
        assert!(caller.name.starts_with("key:") && caller.may_call("anything.at.all"));
        let open = Authenticator::new(&[], None, None).unwrap();
        assert_eq!(open.identify(None).await.unwrap().name, "local");
    }
}
