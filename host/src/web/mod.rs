//! The marketplace's web pages, served beside the registry and `/mcp` by
//! `tool serve` (and beside the registry alone by `tool registry serve`): search, a page per package (what it may do, who signed
//! it, its versions, schemas and counters), and a form that tries a tool
//! through the gateway's own MCP endpoint from the browser.
//!
//! - [`pages`]: what each page shows, and its compiled-in template.
//! - [`words`]: permissions and annotations in plain words.
//! - [`schema`]: schemas as rows to read and inputs to fill in.
//! - [`search`]: ranked search.
//! - [`signin`]: signing in with the team's identity provider (OAuth
//!   authorization code with PKCE, run by the page).
//!
//! Pages are rendered on the server with every value escaped, and sent with
//! a Content-Security-Policy that allows only this server's own script and
//! style, so nothing a publisher writes (descriptions, schemas) or a tool
//! returns can run in the page. The form calls `/mcp` like any MCP client:
//! the same Origin and Host checks, API keys and rate limits apply.

pub mod pages;
pub mod schema;
pub mod search;
pub mod signin;
pub mod words;

use crate::gateway::Gateway;
use crate::grant::Policy;
use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;
use toolmesh_registry::name::Repository;
use toolmesh_registry::store::{FsStore, StoreError};

/// What the pages read: the registry's store, the gateway that runs calls
/// (its catalog and counters), and the local node's policy.
#[derive(Clone)]
pub struct Market {
    store: FsStore,
    gateway: Option<Gateway>,
    policy: Option<Arc<Policy>>,
    needs_key: bool,
    base: String,
    public: bool,
    sign_in: Option<Arc<signin::SignIn>>,
}

impl Market {
    /// Pages over `store` and `gateway`; `policy` is the local node's, when
    /// there is one; `needs_key` says whether `/mcp` asks for API keys;
    /// `base` is the server's own URL, used when a request names no usable host.
    pub fn new(store: FsStore, gateway: Gateway, policy: Option<Arc<Policy>>, needs_key: bool, base: String) -> Self {
        Market { store, gateway: Some(gateway), policy, needs_key, base, public: false, sign_in: None }
    }

    /// These pages, telling clients to use `url` (the server's public URL,
    /// behind a proxy) rather than the address a request came to.
    pub fn reached_at(mut self, url: String) -> Self {
        self.base = url;
        self.public = true;
        self
    }

    /// These pages, offering to sign in with `sign_in`'s issuer.
    pub fn signing_in_with(mut self, sign_in: signin::SignIn) -> Self {
        self.sign_in = Some(Arc::new(sign_in));
        self
    }

    /// Pages over a registry alone (`tool registry serve`): no tool can be
    /// tried or called here, so the pages show how to pull and serve them.
    pub fn registry_only(store: FsStore, base: String) -> Self {
        Market { store, gateway: None, policy: None, needs_key: false, base, public: false, sign_in: None }
    }

    /// The URL a browser reached this server at: its public URL when it has
    /// one, else its `Host` header when that is a plain `host[:port]`, else
    /// the server's own address.
    fn base_for(&self, headers: &HeaderMap) -> String {
        if self.public {
            return self.base.clone();
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
        let plain = !host.is_empty()
            && host.len() <= 255
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if plain { format!("http://{host}") } else { self.base.clone() }
    }
}

/// The page routes: `/`, `/tools/<namespace>/<name>` and `/static/…`.
pub fn router(market: Market) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/tools/{*name}", get(package))
        .route(
            "/static/site.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("../../static/site.css")) }),
        )
        .route("/signed-in", get(signed_in))
        .route("/signin/config", get(sign_in_config))
        .route("/signin/token", axum::routing::post(sign_in_token))
        .route(
            "/static/try.js",
            get(|| async { asset("text/javascript; charset=utf-8", include_str!("../../static/try.js")) }),
        )
        .with_state(market)
}

/// The headers every page carries: only this server's own script, style
/// and connections; images and audio also as `data:` URLs (tool results); never
/// framed; no referrer leaves.
fn page(status: StatusCode, html: Result<String, askama::Error>) -> Response {
    let Ok(html) = html else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the page cannot be drawn").into_response();
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
               media-src data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "public, max-age=300"),
    ];
    (headers, body).into_response()
}

fn unreadable(e: &StoreError) -> Response {
    tracing::warn!(error = %e, "a page cannot read the registry");
    let missing = pages::MissingPage { what: "the registry cannot be read just now; try again".into() };
    page(StatusCode::SERVICE_UNAVAILABLE, missing.render())
}

async fn index(State(market): State<Market>, Query(params): Query<HashMap<String, String>>) -> Response {
    let query = params.get("q").map(String::as_str).unwrap_or_default();
    let query: String = query.chars().take(200).collect();
    match market.index(&query).await {
        Ok(view) => page(StatusCode::OK, view.render()),
        Err(e) => unreadable(&e),
    }
}

/// `/signed-in`: where the issuer sends a person back; the page's script
/// finishes the sign-in.
async fn signed_in(State(market): State<Market>) -> Response {
    if market.sign_in.is_none() {
        return page(StatusCode::NOT_FOUND, pages::MissingPage { what: "this server has no sign-in".into() }.render());
    }
    page(StatusCode::OK, pages::SignedInPage.render())
}

/// A sign-in answer: JSON, never cached, or an error the page shows.
fn sign_in_answer(outcome: Result<serde_json::Value, signin::SignInError>, failed: StatusCode) -> Response {
    let (status, body) = match outcome {
        Ok(body) => (StatusCode::OK, body),
        Err(e) => (failed, serde_json::json!({"error": e.to_string()})),
    };
    (status, [(header::CACHE_CONTROL, "no-store")], axum::Json(body)).into_response()
}

/// `GET /signin/config`: where to send a person to sign in.
async fn sign_in_config(State(market): State<Market>) -> Response {
    let Some(sign_in) = &market.sign_in else {
        return sign_in_answer(Err(signin::SignInError("this server has no sign-in".into())), StatusCode::NOT_FOUND);
    };
    sign_in_answer(sign_in.page_config().await, StatusCode::BAD_GATEWAY)
}

/// `POST /signin/token`: the page's code exchanged at the issuer, for
/// pages of this server only.
async fn sign_in_token(State(market): State<Market>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let refuse = |why: &str| sign_in_answer(Err(signin::SignInError(why.into())), StatusCode::BAD_REQUEST);
    let Some(sign_in) = &market.sign_in else {
        return sign_in_answer(Err(signin::SignInError("this server has no sign-in".into())), StatusCode::NOT_FOUND);
    };
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin != Some(market.base_for(&headers).as_str()) {
        return sign_in_answer(
            Err(signin::SignInError("only this server's pages may finish a sign-in here".into())),
            StatusCode::FORBIDDEN,
        );
    }
    if body.len() > 16 << 10 {
        return refuse("the request is too large");
    }
    let Ok(exchange) = serde_json::from_slice::<signin::Exchange>(&body) else {
        return refuse("expected {\"code\", \"code_verifier\"}");
    };
    sign_in_answer(sign_in.exchange(&exchange).await, StatusCode::BAD_GATEWAY)
}

async fn package(State(market): State<Market>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let not_found = |what: String| page(StatusCode::NOT_FOUND, pages::MissingPage { what }.render());
    let Ok(repo) = name.parse::<Repository>() else {
        return not_found("there is no package by that name".into());
    };
    match market.package(&repo, &market.base_for(&headers)).await {
        Ok(Some(view)) => page(StatusCode::OK, view.render()),
        Ok(None) => not_found(format!("no tool is published as {repo}")),
        Err(e) => unreadable(&e),
    }
}
