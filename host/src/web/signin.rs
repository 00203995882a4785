//! Signing in on the web pages with the team's identity provider: the
//! OAuth authorization code flow with PKCE, the browser a public client of
//! the issuer (`try.js` makes the verifier, sends the person to the
//! issuer's sign-in page and keeps the access token in the tab's session
//! storage).
//!
//! The server helps with two things a page cannot do under its strict
//! Content-Security-Policy (which lets it reach only this server): it
//! tells the page where the issuer's authorization endpoint is and which
//! client id to use (`GET /signin/config`; the client is registered with
//! the issuer on first use when no `--oauth-web-client` is given and the
//! issuer allows dynamic registration), and it relays the code exchange to
//! the issuer's token endpoint (`POST /signin/token`), which needs the
//! verifier only the page holds. The relay forwards to that one endpoint,
//! for this one client and redirect address, and hands back the access
//! token alone.

use crate::auth::issuer::Issuer;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// Settings of the pages' sign-in.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// The issuer people sign in with.
    pub issuer: String,
    /// A public client registered with the issuer for these pages, whose
    /// redirect address is [`SignInConfig::redirect_uri`]; registered
    /// dynamically when absent.
    pub client_id: Option<String>,
    /// The MCP endpoint tokens are for (the `resource` asked for).
    pub resource: String,
    /// Where the issuer sends the person back: `<public-url>/signed-in`.
    pub redirect_uri: String,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
}

/// What a sign-in could not do, in words for the page.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SignInError(pub String);

/// The issuer's endpoints the flow uses.
#[derive(Debug, Clone)]
struct Endpoints {
    authorization: String,
    token: String,
}

/// The pages' sign-in with one issuer.
pub struct SignIn {
    config: SignInConfig,
    issuer: Issuer,
    http: reqwest::Client,
    /// The endpoints and client id, found (and registered) once.
    ready: tokio::sync::OnceCell<(Endpoints, String)>,
    /// The last failure to find them, and when: asked again at most every
    /// [`RETRY_AFTER`], so pages cannot make this server hammer the issuer.
    failed: std::sync::Mutex<Option<(std::time::Instant, SignInError)>>,
}

/// How long a failure to reach the issuer is answered from memory.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// How long one request to the issuer may take.
const ISSUER_WAIT: Duration = Duration::from_secs(10);

/// What the page sends to exchange its code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exchange {
    /// The authorization code from the redirect.
    pub code: String,
    /// The PKCE verifier the page made.
    pub code_verifier: String,
}

impl SignIn {
    /// Sign-in with `config`'s issuer.
    pub fn new(config: SignInConfig) -> Result<Self, String> {
        let http = toolmesh_registry::client::http_builder()
            .user_agent(concat!("toolmesh/", env!("CARGO_PKG_VERSION")))
            .timeout(ISSUER_WAIT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        let issuer = Issuer::new(&config.issuer, http.clone())?;
        Ok(SignIn { config, issuer, http, ready: tokio::sync::OnceCell::new(), failed: Default::default() })
    }

    /// The endpoints and the client id, found on first use.
    async fn ready(&self) -> Result<&(Endpoints, String), SignInError> {
        if let Some((at, error)) = &*self.failed.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < RETRY_AFTER
        {
            return Err(error.clone());
        }
        let found: Result<&(Endpoints, String), SignInError> = self
            .ready
            .get_or_try_init(|| async {
                let (url, doc) = self.issuer.metadata().await.map_err(SignInError)?;
                let endpoint = |name: &str| {
                    doc[name]
                        .as_str()
                        .filter(|u| crate::auth::issuer::check_id(u).is_ok())
                        .map(str::to_owned)
                        .ok_or_else(|| SignInError(format!("{url} names no usable {name}")))
                };
                let endpoints = Endpoints {
                    authorization: endpoint("authorization_endpoint")?,
                    token: endpoint("token_endpoint")?,
                };
                let client_id = match &self.config.client_id {
                    Some(id) => id.clone(),
                    None => {
                        self.register(&endpoint("registration_endpoint").map_err(|_| {
                            SignInError(format!(
                                "{} offers no dynamic client registration: register a public client whose redirect \
                             address is {} and pass its id with --oauth-web-client",
                                self.config.issuer, self.config.redirect_uri
                            ))
                        })?)
                        .await?
                    }
                };
                Ok((endpoints, client_id))
            })
            .await;
        if let Err(error) = &found {
            *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), error.clone()));
        }
        found
    }

    /// Registers these pages as a public client (RFC 7591).
    async fn register(&self, endpoint: &str) -> Result<String, SignInError> {
        let metadata = json!({
            "client_name": "toolmesh web pages",
            "redirect_uris": [self.config.redirect_uri],
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "web",
            "scope": self.config.scopes.join(" "),
        });
        let (status, doc) = answer(self.http.post(endpoint).json(&metadata), endpoint).await?;
        match doc["client_id"].as_str() {
            Some(id) if status.is_success() => {
                tracing::info!(issuer = %self.config.issuer, client = id, "web pages registered as a client");
                Ok(id.to_owned())
            }
            _ => Err(SignInError(format!("{endpoint} refused the registration ({status}): {}", error_text(&doc)))),
        }
    }

    /// What the page needs to send a person to sign in.
    pub async fn page_config(&self) -> Result<Value, SignInError> {
        let (endpoints, client_id) = self.ready().await?;
        Ok(json!({
            "authorization_endpoint": endpoints.authorization,
            "client_id": client_id,
            "redirect_uri": self.config.redirect_uri,
            "resource": self.config.resource,
            "scope": self.config.scopes.join(" "),
            "issuer": self.config.issuer,
        }))
    }

    /// Exchanges a code for an access token at the issuer; the token (and
    /// its lifetime and scopes) for the page, or why not.
    pub async fn exchange(&self, exchange: &Exchange) -> Result<Value, SignInError> {
        let verifier_ok = (43..=128).contains(&exchange.code_verifier.len())
            && exchange.code_verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !verifier_ok {
            return Err(SignInError("the code verifier is not an RFC 7636 verifier".into()));
        }
        if exchange.code.is_empty() || exchange.code.len() > 2048 {
            return Err(SignInError("no usable code".into()));
        }
        let (endpoints, client_id) = self.ready().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", exchange.code.as_str()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("client_id", client_id.as_str()),
            ("code_verifier", exchange.code_verifier.as_str()),
            ("resource", self.config.resource.as_str()),
        ];
        let (status, doc) = answer(self.http.post(&endpoints.token).form(&form), &endpoints.token).await?;
        match doc["access_token"].as_str() {
            Some(token) if status.is_success() => Ok(json!({
                "access_token": token,
                "expires_in": doc["expires_in"],
                "scope": doc["scope"],
            })),
            _ => Err(SignInError(format!("the issuer refused the sign-in ({status}): {}", error_text(&doc)))),
        }
    }
}

/// Sends `request` to the issuer's `endpoint`: its status and JSON
/// document (null when the body is not JSON).
async fn answer(request: reqwest::RequestBuilder, endpoint: &str) -> Result<(reqwest::StatusCode, Value), SignInError> {
    let response = request.send().await.map_err(|e| SignInError(format!("cannot reach {endpoint}: {e}")))?;
    let status = response.status();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

/// An OAuth error document in words.
fn error_text(doc: &Value) -> String {
    let error = doc["error"].as_str().unwrap_or("no error given");
    match doc["error_description"].as_str() {
        Some(description) => format!("{error}: {}", description.chars().take(300).collect::<String>()),
        None => error.to_owned(),
    }
}
