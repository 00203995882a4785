//! The flags of an MCP front (`tool serve`, `tool gateway`): who may call,
//! from where, how often, and how much.

use super::Failure;
use super::sandbox_args::parse_size_arg;
use anyhow::anyhow;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use toolmesh_host::auth::OAuthConfig;
use toolmesh_host::auth::access::AccessPolicy;
use toolmesh_host::auth::introspect::IntrospectionClient;
use toolmesh_host::auth::issuer::check_id;
use toolmesh_host::gateway::http::McpHttpConfig;
use toolmesh_host::usage::QuotaConfig;
use toolmesh_host::web::signin::SignInConfig;

/// Who may reach the MCP endpoint and with how much.
#[derive(Args, Debug)]
pub struct FrontArgs {
    /// An API key MCP clients must present (repeatable; `TOOLMESH_API_KEYS`,
    /// comma-separated). Required unless listening on loopback.
    #[arg(long = "api-key", env = "TOOLMESH_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    api_keys: Vec<String>,
    /// A host name clients use to reach this server (repeatable), beyond the loopback names.
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// A browser origin allowed to call /mcp (repeatable), beyond local pages.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// MCP calls per minute per caller (0: unlimited).
    #[arg(long, default_value_t = 600)]
    rate_limit: u32,
    /// Largest MCP request body (a call's arguments) [default: 4MiB].
    #[arg(long, value_parser = parse_size_arg, value_name = "SIZE")]
    max_body: Option<u64>,
    /// The URL people and clients reach this server at, when that is not
    /// the address it listens on (behind a TLS proxy:
    /// `https://tools.example.com`). The web pages' client entry and pull
    /// command use it, and its host and origin are allowed.
    #[arg(long, value_parser = PublicUrl::parse, value_name = "URL")]
    pub public_url: Option<PublicUrl>,
    /// An OAuth authorization server whose access tokens (JWTs) are
    /// accepted (repeatable): its issuer identifier, whose RFC 8414 or
    /// OpenID metadata names its keys. Needs --public-url: tokens must be
    /// for `<public-url>/mcp`.
    #[arg(long = "oauth-issuer", value_name = "URL", requires = "public_url")]
    oauth_issuers: Vec<String>,
    /// An audience accepted besides `<public-url>/mcp`, for identity
    /// providers that cannot issue tokens for it (repeatable).
    #[arg(long = "oauth-audience", value_name = "AUD", requires = "oauth_issuers")]
    oauth_audiences: Vec<String>,
    /// Who may call which tools: a TOML file of rules mapping tokens'
    /// scopes and groups to tool-name patterns (docs/auth.md). Without it,
    /// anyone signed in may call every tool.
    #[arg(long = "access", value_name = "FILE", requires = "oauth_issuers")]
    access: Option<PathBuf>,
    /// Quotas per caller (calls per minute, CPU-seconds per hour, calls at
    /// once): a TOML file (docs/auth.md). On a mesh with JetStream they
    /// hold across its gateways.
    #[arg(long = "quotas", value_name = "FILE")]
    quotas: Option<PathBuf>,
    /// The client id the web pages sign in with: a public client of the
    /// (first) --oauth-issuer whose redirect address is
    /// `<public-url>/signed-in`. Without it the pages register one with
    /// the issuer (dynamic client registration) when first asked.
    #[arg(long = "oauth-web-client", value_name = "ID", requires = "oauth_issuers")]
    oauth_web_client: Option<String>,
    /// Accept opaque access tokens too, checked by asking the (first)
    /// --oauth-issuer (RFC 7662 introspection) as this client, whose secret
    /// is in `TOOLMESH_OAUTH_CLIENT_SECRET`.
    #[arg(long = "oauth-introspection-client", value_name = "ID", requires = "oauth_issuers")]
    oauth_introspection_client: Option<String>,
    /// The introspection client's secret.
    #[arg(long = "oauth-client-secret", env = "TOOLMESH_OAUTH_CLIENT_SECRET", hide_env_values = true, hide = true)]
    oauth_client_secret: Option<String>,
    /// For big catalogs: list only `search_tools` and the tools --list-also
    /// names (the code tools unless given); every tool stays callable by
    /// name, directly or from code.
    #[arg(long = "tool-search")]
    tool_search: bool,
    /// A pattern of tool names still listed with --tool-search (repeatable;
    /// `*` stands for any run of characters).
    #[arg(long = "list-also", value_name = "PATTERN", requires = "tool_search",
          default_values_t = ["*.run_javascript".to_owned(), "*.run_python".to_owned()])]
    list_also: Vec<String>,
}

impl FrontArgs {
    /// The client to introspect opaque tokens as, if asked for.
    fn introspection(&self) -> Result<Option<IntrospectionClient>, Failure> {
        let Some(id) = &self.oauth_introspection_client else { return Ok(None) };
        let secret = self.oauth_client_secret.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            Failure::usage(anyhow!("--oauth-introspection-client needs its secret in TOOLMESH_OAUTH_CLIENT_SECRET"))
        })?;
        Ok(Some(IntrospectionClient { id: id.clone(), secret }))
    }

    /// How the web pages sign people in, when OAuth is on: with the first
    /// issuer, for the scopes `mcp`'s access policy names.
    pub fn sign_in(&self, mcp: &McpHttpConfig) -> Option<SignInConfig> {
        let (oauth, public) = (mcp.oauth.as_ref()?, self.public_url.as_ref()?);
        Some(SignInConfig {
            issuer: oauth.issuers.first()?.clone(),
            client_id: self.oauth_web_client.clone(),
            resource: oauth.resource.clone(),
            redirect_uri: format!("{}/signed-in", public.base),
            scopes: mcp.access.as_ref().map(|a| a.scopes().into_iter().collect()).unwrap_or_default(),
        })
    }

    /// The tool search mode, if asked for.
    pub fn tool_search(&self) -> Option<toolmesh_host::gateway::search::ToolSearch> {
        self.tool_search.then(|| toolmesh_host::gateway::search::ToolSearch { listed: self.list_also.clone() })
    }

    /// The quotas of `--quotas`, if given.
    pub fn quotas(&self) -> Result<Option<QuotaConfig>, Failure> {
        match &self.quotas {
            Some(path) => Ok(Some(QuotaConfig::load(path).map_err(|e| Failure::usage(anyhow!("--quotas {e}")))?)),
            None => Ok(None),
        }
    }
}

/// The URL a server is reached at from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, without a trailing `/`: also the browser origin.
    pub base: String,
    /// `host[:port]`, as clients send it in `Host`.
    pub authority: String,
}

impl PublicUrl {
    /// Reads `https://host[:port]` (or `http://`), with no path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: http::Uri = text.trim_end_matches('/').parse().map_err(|e| format!("not a URL: {e}"))?;
        let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https");
        let (Some(scheme), Some(authority)) = (scheme, uri.authority()) else {
            return Err("expected http:// or https:// and a host, such as https://tools.example.com".into());
        };
        if uri.path() != "/" && !uri.path().is_empty() || uri.query().is_some() || authority.as_str().contains('@') {
            return Err("expected only a scheme and a host (and port), no path, query or user".into());
        }
        // As browsers write an origin: the host in lower case, no default port.
        let host = authority.host().to_ascii_lowercase();
        let default = if scheme == "https" { 443 } else { 80 };
        let authority = match authority.port_u16() {
            Some(port) if port != default => format!("{host}:{port}"),
            _ => host,
        };
        Ok(PublicUrl { base: format!("{scheme}://{authority}"), authority })
    }
}

impl FrontArgs {
    /// The MCP endpoint's settings for a server listening on `addr`;
    /// refuses a non-loopback address without API keys.
    pub fn config(&self, addr: SocketAddr) -> Result<McpHttpConfig, Failure> {
        if !addr.ip().is_loopback() && self.api_keys.is_empty() && self.oauth_issuers.is_empty() {
            return Err(Failure::usage(anyhow!(
                "{addr} is not a loopback address: pass --api-key KEY or --oauth-issuer URL so only your \
                 clients can call tools"
            )));
        }
        let oauth = match (&self.public_url, self.oauth_issuers.is_empty()) {
            (Some(public), false) => Some(OAuthConfig {
                // Exactly as given: tokens' `iss` is compared as a string,
                // and some providers end theirs with a slash.
                issuers: self.oauth_issuers.clone(),
                resource: format!("{}/mcp", public.base),
                audiences: self.oauth_audiences.clone(),
                introspection: self.introspection()?,
            }),
            _ => None,
        };
        let access = match &self.access {
            Some(path) => Some(AccessPolicy::load(path).map_err(|e| Failure::usage(anyhow!("--access {e}")))?),
            None => None,
        };
        // Issuers that cannot work are refused before anything starts.
        for issuer in &self.oauth_issuers {
            check_id(issuer).map_err(|e| Failure::usage(anyhow!("--oauth-issuer: {e}")))?;
        }
        let mut mcp = McpHttpConfig {
            api_keys: self.api_keys.clone(),
            oauth,
            access,
            rate_per_minute: self.rate_limit,
            ..McpHttpConfig::default()
        };
        if let Some(max) = self.max_body {
            mcp.max_body =
                usize::try_from(max).map_err(|_| Failure::usage(anyhow!("--max-body {max} is too large")))?;
        }
        mcp.allowed_hosts.extend(self.allowed_hosts.iter().cloned());
        mcp.allowed_origins.extend(self.allowed_origins.iter().cloned());
        if let Some(public) = &self.public_url {
            mcp.public_url = Some(public.base.clone());
            // Pages served there call /mcp from that origin, through that host.
            mcp.allowed_hosts.push(public.authority.clone());
            mcp.allowed_origins.push(public.base.clone());
        }
        Ok(mcp)
    }
}

#[cfg(test)]
mod tests {
    use super::PublicUrl;

    #[test]
    fn public_urls_are_a_scheme_and_a_host() {
        let url = PublicUrl::parse("https://tools.example.com/").unwrap();
        assert_eq!((url.base.as_str(), url.authority.as_str()), ("https://tools.example.com", "tools.example.com"));
        assert_eq!(PublicUrl::parse("http://10.0.0.5:8080").unwrap().authority, "10.0.0.5:8080");
        // Written as browsers send an Origin.
        assert_eq!(PublicUrl::parse("https://Tools.Example.com:443").unwrap().base, "https://tools.example.com");
        assert_eq!(PublicUrl::parse("http://[::1]:80/").unwrap().base, "http://[::1]");
        for bad in
            ["tools.example.com", "ftp://x", "https://x/path", "https://x?q=1", "https://user@x", "javascript:alert(1)"]
        {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
