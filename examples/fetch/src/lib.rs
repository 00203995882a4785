//! `fetch`: an HTTP GET of a URL, returning its text or JSON. It reaches
//! only the hosts its `tool.toml` requests and the node grants; the host
//! checks each request (and each redirect it follows) after DNS.
use toolmesh_guest::http::{self, Url};
use toolmesh_guest::prelude::*;

/// Most redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// Default and largest body a call returns.
const DEFAULT_MAX_BYTES: u64 = 256 << 10;
const LIMIT_MAX_BYTES: u64 = 768 << 10;

/// Arguments of `fetch`.
#[derive(Deserialize, JsonSchema)]
struct FetchArgs {
    /// The `http://` or `https://` URL to get.
    url: String,
    /// The largest body to accept, in bytes (default 262144, at most 786432).
    #[serde(default)]
    max_bytes: Option<u64>,
}

/// What `fetch` returns.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Fetched {
    /// The URL that answered, after redirects.
    url: String,
    /// The HTTP status.
    status: u16,
    /// The `Content-Type` header, if any.
    content_type: Option<String>,
    /// How many redirects were followed.
    redirects: usize,
    /// The body as text, when it is text (and not JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// The body parsed, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<serde_json::Value>,
}

fn fetch(args: FetchArgs) -> Result<Json<Fetched>, ToolError> {
    let max_bytes = args.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes > LIMIT_MAX_BYTES {
        return Err(ToolError::invalid_arguments(format!("max_bytes: at most {LIMIT_MAX_BYTES}")));
    }
    let mut url = Url::parse(&args.url).map_err(|e| ToolError::invalid_arguments(format!("url: {e}")))?;
    for redirects in 0..=MAX_REDIRECTS {
        let response =
            http::send("GET", &url.to_string(), max_bytes).map_err(|e| ToolError::failed(format!("{url}: {e}")))?;
        if matches!(response.status, 301 | 302 | 303 | 307 | 308)
            && let Some(location) = response.header("location")
        {
            url = url.join(location).map_err(|e| ToolError::failed(format!("{url} redirects to {location:?}: {e}")))?;
            continue;
        }
        return shape(url, response, redirects).map(Json);
    }
    Err(ToolError::failed(format!("more than {MAX_REDIRECTS} redirects")))
}

/// The result for `response`: JSON parsed, text as text, binary refused.
fn shape(url: Url, response: http::Response, redirects: usize) -> Result<Fetched, ToolError> {
    let content_type = response.header("content-type").map(str::to_owned);
    let mime = content_type.as_deref().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let mut out =
        Fetched { url: url.to_string(), status: response.status, content_type, redirects, text: None, json: None };
    if mime == "application/json" || mime.ends_with("+json") {
        out.json = Some(
            serde_json::from_slice(&response.body)
                .map_err(|e| ToolError::failed(format!("{url} says it is JSON but is not: {e}")))?,
        );
    } else {
        let text = String::from_utf8(response.body)
            .map_err(|_| ToolError::failed(format!("{url} returned binary content ({mime}), not text")))?;
        out.text = Some(text);
    }
    Ok(out)
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("fetch", "Gets a URL on a host this tool may reach and returns its text or JSON.", fetch)
            .read_only()
            .idempotent()
            .open_world(),
    ]
}

toolmesh_guest::export_tools!(tools);
