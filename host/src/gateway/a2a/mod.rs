//! The A2A front door (Agent2Agent protocol 1.0, JSON-RPC binding): the
//! catalog's tools as an agent's skills, called by other agents.
//!
//! - `GET /.well-known/agent-card.json`: the agent card. Each skill is a
//!   tool (its MCP name as the id); the tools' JSON Schemas travel in an
//!   extension of the card ([`SCHEMAS_EXTENSION`]). A gateway that needs a
//!   key or a token lists no skills there and says how to sign in;
//!   `GetExtendedAgentCard` then gives a signed-in caller the skills it may
//!   use.
//! - `POST /a2a`: `SendMessage`, `GetTask`, `CancelTask`,
//!   `GetExtendedAgentCard`. A message asks for a skill with a data part
//!   `{"skill": "<tool>", "arguments": {…}}` (or `metadata.skill` and a
//!   data part holding the arguments). Every call is an MCP task of the
//!   gateway ([`super::tasks`]): the same records, so it outlives the
//!   connection, and on a mesh any gateway answers for it. `SendMessage`
//!   waits for the task to end unless `configuration.returnImmediately`.
//!   Calls go through the same path as MCP calls: the caller identified at
//!   the edge, its scopes, quotas, placement and metering; `Host` and
//!   `Origin` are checked as for `/mcp`, and bodies must be JSON.
//!
//! A message naming no skill, or one the catalog lacks (or the caller may
//! not use), makes a task in `TASK_STATE_REJECTED` saying why (not kept:
//! `GetTask` does not know it); a malformed one is `-32602`; one of
//! only files `-32005`. Streaming and push notifications are not offered
//! (`-32004`, `-32003`).

mod shape;

use super::Gateway;
use super::tasks::{self, Record, Status};
use crate::auth::Caller;
use crate::capability::ask::ClientAbilities;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shape::{a2a_task, rejected};
use std::collections::BTreeMap;
use std::time::Duration;

/// The extension of the card that carries each skill's input and output
/// JSON Schemas, by skill id.
pub const SCHEMAS_EXTENSION: &str = "https://toolmesh.dev/a2a/extensions/tool-schemas/v1";

/// The protocol version spoken.
const PROTOCOL_VERSION: &str = "1.0";

/// The longest `SendMessage` waits for its task before answering with it
/// still working.
const LONGEST_WAIT: Duration = Duration::from_secs(600);

/// A JSON-RPC error: code, message.
type RpcError = (i64, String);

/// The A2A routes: the card (open to anyone) and the endpoint (behind the
/// gateway's edge, which identifies the caller).
#[derive(Clone)]
pub(crate) struct A2a {
    gateway: Gateway,
    public: Option<String>,
    auth_required: bool,
    max_body: usize,
    /// `Host` values answered, `Origin` values allowed to call.
    allowed: (Vec<String>, Vec<String>),
}

impl A2a {
    /// The A2A face of `gateway`, reached at `public` if given.
    pub(crate) fn new(
        gateway: Gateway,
        public: Option<String>,
        (auth_required, max_body): (bool, usize),
        allowed: (Vec<String>, Vec<String>),
    ) -> Self {
        A2a { gateway, public, auth_required, max_body, allowed }
    }

    /// `POST /a2a`, to be put behind the edge.
    pub(crate) fn endpoint(&self) -> Router {
        let a2a = self.clone();
        Router::new().route(
            "/a2a",
            axum::routing::post(move |request: Request| {
                let a2a = a2a.clone();
                async move { a2a.serve(request).await }
            }),
        )
    }

    /// `GET /.well-known/agent-card.json`, open to anyone: every skill of
    /// an open gateway, none of one that needs a key or a token.
    pub(crate) fn card_route(self) -> Router {
        Router::new().route(
            "/.well-known/agent-card.json",
            axum::routing::get(move |headers: HeaderMap| {
                let anyone = (!self.auth_required).then(|| Caller::unrestricted("anyone"));
                let card = self.card(&headers, anyone.as_ref());
                async move { ([(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], axum::Json(card)).into_response() }
            }),
        )
    }

    /// `scheme://authority` the gateway is reached at.
    fn base(&self, headers: &HeaderMap) -> String {
        super::listings::base_url(self.public.as_deref(), headers)
    }

    /// The agent card, with the skills `caller` may use (none without one).
    fn card(&self, headers: &HeaderMap, caller: Option<&Caller>) -> Value {
        let base = self.base(headers);
        let catalog = self.gateway.catalog();
        let (mut skills, mut schemas) = (Vec::new(), Map::new());
        for tool in catalog.tools().filter(|t| caller.is_some_and(|c| c.may_call(&t.name))) {
            let d = &tool.descriptor;
            let description = d["description"].as_str().filter(|s| !s.is_empty()).unwrap_or(&tool.name);
            let title = d["annotations"]["title"].as_str().unwrap_or(&tool.name);
            let namespace = tool.repository.as_str().split('/').next().unwrap_or_default();
            skills.push(json!({
                "id": tool.name,
                "name": title,
                "description": description,
                "tags": [namespace, tool.repository.as_str(), "mcp-tool"],
                "inputModes": ["application/json"],
                "outputModes": ["application/json", "text/plain"],
            }));
            let mut input = d["input_schema"].clone();
            if let Some(input) = input.as_object_mut() {
                input.remove(tasks::TASK_KEYWORD);
            }
            let mut schema = json!({"inputSchema": input});
            if d["output_schema"].is_object() {
                schema["outputSchema"] = d["output_schema"].clone();
            }
            schemas.insert(tool.name.clone(), schema);
        }
        let mut card = json!({
            "name": "toolmesh",
            "description": "Sandboxed WebAssembly tools as skills: send a data part {\"skill\": <id>, \"arguments\": {…}}",
            "version": env!("CARGO_PKG_VERSION"),
            "supportedInterfaces": [{"url": format!("{base}/a2a"), "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}],
            "provider": {"organization": "toolmesh", "url": format!("{base}/")},
            "documentationUrl": format!("{base}/"),
            "capabilities": {
                "streaming": false,
                "pushNotifications": false,
                "extendedAgentCard": self.auth_required,
                "extensions": [{
                    "uri": SCHEMAS_EXTENSION,
                    "description": "The JSON Schemas of each skill's arguments and structured result, by skill id",
                    "required": false,
                    "params": schemas,
                }],
            },
            "defaultInputModes": ["application/json"],
            "defaultOutputModes": ["application/json", "text/plain"],
            "skills": skills,
        });
        if self.auth_required {
            card["securitySchemes"] = json!({"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}});
            card["securityRequirements"] = json!([{"schemes": {"bearer": {"list": []}}}]);
        }
        card
    }

    /// Answers one JSON-RPC request.
    async fn serve(&self, request: Request) -> Response {
        let caller = request.extensions().get::<Caller>().cloned().unwrap_or_else(Caller::nobody);
        let headers = request.headers().clone();
        // As for /mcp: no DNS rebinding, no calls from other sites' pages
        // (a JSON body needs a CORS preflight, which is never granted).
        let (hosts, origins) = &self.allowed;
        if !super::origin::host_allowed(&headers, hosts) || !super::origin::origin_allowed(&headers, origins) {
            return (axum::http::StatusCode::FORBIDDEN, "this host or origin may not call").into_response();
        }
        let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !json.is_some_and(|t| t.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")))
        {
            return (axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE, "send JSON-RPC as application/json")
                .into_response();
        }
        let Ok(bytes) = axum::body::to_bytes(request.into_body(), self.max_body).await else {
            return rpc(Value::Null, Err((-32600, "the request body is too large".into())));
        };
        let Ok(message) = serde_json::from_slice::<Value>(&bytes) else {
            return rpc(Value::Null, Err((-32700, "the body is not JSON".into())));
        };
        let id = match &message["id"] {
            id @ (Value::String(_) | Value::Number(_)) => id.clone(),
            _ => Value::Null,
        };
        if message["jsonrpc"] != "2.0" || !message["method"].is_string() {
            return rpc(id, Err((-32600, "not a JSON-RPC 2.0 request".into())));
        }
        let version = headers.get("a2a-version").and_then(|v| v.to_str().ok()).unwrap_or(PROTOCOL_VERSION);
        if version.split('.').next() != Some("1") {
            return rpc(id, Err((-32009, format!("A2A version {version} is not supported; this agent speaks 1.0"))));
        }
        let params = message.get("params").cloned().unwrap_or_else(|| json!({}));
        let answer = match message["method"].as_str().unwrap_or_default() {
            "SendMessage" => self.send_message(&caller, &params).await,
            "GetTask" => self.get_task(&caller, &params).await,
            "CancelTask" => self.cancel_task(&caller, &params).await,
            "GetExtendedAgentCard" if self.auth_required => Ok(self.card(&headers, Some(&caller))),
            "GetExtendedAgentCard" => {
                Err((-32007, "this agent has no extended card: its card lists every skill".into()))
            }
            "SendStreamingMessage" | "SubscribeToTask" | "ListTasks" => {
                Err((-32004, "this agent does not stream or list tasks: use SendMessage and GetTask".into()))
            }
            method if method.contains("PushNotificationConfig") => {
                Err((-32003, "this agent sends no push notifications".into()))
            }
            method => Err((-32601, format!("unknown method `{method}`"))),
        };
        rpc(id, answer)
    }

    /// `SendMessage`: a task running the skill the message asks for.
    async fn send_message(&self, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
        let message = params.get("message").filter(|m| m.is_object()).ok_or((-32602, "no message".to_owned()))?;
        if message.get("taskId").is_some_and(|t| !t.is_null()) {
            return Err((-32004, "a task of this agent takes no further messages".into()));
        }
        let record = match skill_request(message)? {
            Asked::Skill(name, mut arguments) => {
                match self.gateway.catalog().get(&name).filter(|_| caller.may_call(&name)) {
                    Some(tool) => {
                        coerce(&mut arguments, &tool.descriptor["input_schema"]);
                        let arguments = match arguments {
                            Value::Object(arguments) => arguments,
                            _ => return Err((-32602, "the skill's arguments are not a JSON object".into())),
                        };
                        let record =
                            tasks::new_record(caller, &name, arguments, ClientAbilities::default(), BTreeMap::new());
                        self.gateway.start_task(caller, record, None).await.map_err(store_error)?
                    }
                    None => return Ok(json!({"task": rejected(&format!("there is no skill `{name}`"))})),
                }
            }
            Asked::Nothing(why) => return Ok(json!({"task": rejected(&why)})),
        };
        let wait = !params["configuration"]["returnImmediately"].as_bool().unwrap_or(false);
        let record = if wait { self.until_settled(caller, record).await? } else { record };
        Ok(json!({"task": a2a_task(&record)}))
    }

    /// Polls task `record` until it is no longer working (or the longest wait).
    async fn until_settled(&self, caller: &Caller, mut record: Record) -> Result<Record, RpcError> {
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(10);
        while record.status == Status::Working && started.elapsed() < LONGEST_WAIT {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
            match self.gateway.tasks().get(&caller.name, &record.id).await.map_err(store_error)? {
                Some(now) => record = self.gateway.take_over_lapsed(caller, now).await.map_err(store_error)?,
                None => return Err(not_found(&record.id)),
            }
        }
        Ok(record)
    }

    /// `GetTask`.
    async fn get_task(&self, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
        let id = params["id"].as_str().ok_or((-32602, "no task id".to_owned()))?;
        match self.gateway.tasks().get(&caller.name, id).await.map_err(store_error)? {
            // A task whose gateway died is run again here (or failed).
            Some(record) => Ok(a2a_task(&self.gateway.take_over_lapsed(caller, record).await.map_err(store_error)?)),
            None => Err(not_found(id)),
        }
    }

    /// `CancelTask`: a working task stops and is `TASK_STATE_CANCELED`.
    async fn cancel_task(&self, caller: &Caller, params: &Value) -> Result<Value, RpcError> {
        let id = params["id"].as_str().ok_or((-32602, "no task id".to_owned()))?;
        let tasks = self.gateway.tasks();
        let Some(record) = tasks.get(&caller.name, id).await.map_err(store_error)? else {
            return Err(not_found(id));
        };
        if record.status.is_terminal() {
            return Err((-32002, format!("task {id} has ended: it cannot be canceled")));
        }
        self.gateway.cancel_task(caller, id).await.map_err(store_error)?;
        match tasks.get(&caller.name, id).await.map_err(store_error)? {
            Some(record) => Ok(a2a_task(&record)),
            None => Err(not_found(id)),
        }
    }
}

/// What a message asks for.
#[derive(Debug, PartialEq)]
enum Asked {
    /// A skill, with its arguments.
    Skill(String, Value),
    /// Nothing this agent can do, and why.
    Nothing(String),
}

/// The skill and arguments `message` asks for: a data part
/// `{"skill", "arguments"}`, or `metadata.skill` with a data part of
/// arguments. Malformed messages are `-32602`; files alone `-32005`.
fn skill_request(message: &Value) -> Result<Asked, RpcError> {
    let parts =
        message["parts"].as_array().filter(|p| !p.is_empty()).ok_or((-32602, "the message has no parts".to_owned()))?;
    let data: Vec<&Value> = parts.iter().filter_map(|p| p.get("data")).collect();
    if let Some(asked) = data.iter().find(|d| d["skill"].is_string()) {
        let arguments = asked.get("arguments").cloned().unwrap_or_else(|| json!({}));
        return Ok(Asked::Skill(asked["skill"].as_str().unwrap_or_default().to_owned(), arguments));
    }
    if let Some(skill) = message["metadata"]["skill"].as_str() {
        let arguments = data.first().map_or_else(|| json!({}), |d| (*d).clone());
        return Ok(Asked::Skill(skill.to_owned(), arguments));
    }
    if data.is_empty() && parts.iter().all(|p| p.get("text").is_none()) {
        return Err((-32005, "this agent takes JSON data parts, not files".into()));
    }
    Ok(Asked::Nothing(
        "name a skill: send a data part {\"skill\": <skill id>, \"arguments\": {…}} (the agent card lists the skills)"
            .into(),
    ))
}

/// Whole numbers where `schema` says `integer` become integers: clients
/// that carry JSON as protobuf values send every number as a double.
fn coerce(value: &mut Value, schema: &Value) {
    let says_integer = match &schema["type"] {
        Value::String(t) => t == "integer",
        Value::Array(types) => types.iter().any(|t| t == "integer"),
        _ => false,
    };
    match value {
        Value::Number(n) if says_integer && n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *value = json!(f as i64);
            }
        }
        Value::Object(object) => {
            for (key, item) in object.iter_mut() {
                if let Some(inner) = schema["properties"].get(key) {
                    coerce(item, inner);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                coerce(item, &schema["items"]);
            }
        }
        _ => {}
    }
}

/// `-32001` for task `id`.
fn not_found(id: &str) -> RpcError {
    (-32001, format!("task {id} not found"))
}

/// `-32603` for a task store that did not answer.
fn store_error(e: crate::usage::store::StoreError) -> RpcError {
    (-32603, format!("the task store did not answer: {e}"))
}

/// A JSON-RPC answer (HTTP 200 either way), errors with the reason A2A
/// clients read.
fn rpc(id: Value, answer: Result<Value, RpcError>) -> Response {
    let body = match answer {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err((code, message)) => {
            let reason = match code {
                -32001 => "TASK_NOT_FOUND",
                -32002 => "TASK_NOT_CANCELABLE",
                -32003 => "PUSH_NOTIFICATION_NOT_SUPPORTED",
                -32004 => "UNSUPPORTED_OPERATION",
                -32005 => "CONTENT_TYPE_NOT_SUPPORTED",
                -32007 => "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
                -32009 => "VERSION_NOT_SUPPORTED",
                -32602 => "INVALID_PARAMS",
                -32600 | -32700 => "INVALID_REQUEST",
                _ => "INTERNAL",
            };
            let data = [json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "a2a-protocol.org",
                "metadata": {},
            })];
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}})
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], Body::from(body.to_string())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_skill() {
        let asked = json!({"parts": [{"text": "hi"}, {"data": {"skill": "a.b.c", "arguments": {"x": 1}}}]});
        assert_eq!(skill_request(&asked), Ok(Asked::Skill("a.b.c".into(), json!({"x": 1}))));
        let by_metadata = json!({"metadata": {"skill": "a.b.c"}, "parts": [{"data": {"x": 2}}]});
        assert_eq!(skill_request(&by_metadata), Ok(Asked::Skill("a.b.c".into(), json!({"x": 2}))));
        assert!(matches!(skill_request(&json!({"parts": [{"text": "do it"}]})), Ok(Asked::Nothing(_))));
        assert_eq!(skill_request(&json!({"parts": []})).unwrap_err().0, -32602);
        assert_eq!(skill_request(&json!({"parts": [{"url": "https://x/y.png"}]})).unwrap_err().0, -32005);
    }

    #[test]
    fn doubles_become_integers_where_the_schema_says_so() {
        let schema = json!({"type": "object", "properties": {
            "n": {"type": "integer"}, "f": {"type": "number"}, "list": {"type": "array", "items": {"type": "integer"}}}});
        let mut args = json!({"n": 3.0, "f": 2.0, "list": [1.0, 2.5], "other": 4.0});
        coerce(&mut args, &schema);
        assert_eq!(args, json!({"n": 3, "f": 2.0, "list": [1, 2.5], "other": 4.0}));
        assert!(args["n"].is_i64() && args["f"].is_f64());
    }
}
