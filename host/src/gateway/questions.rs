//! A call's questions to its client (elicitation, sampling, roots), as
//! the gateway asks them.
//!
//! A sandboxed call is never suspended ([`crate::capability::ask`]): one
//! that asks what it has no answer to ends, and runs again with the
//! answers. With a 2026-07-28 client the gateway answers the request with
//! an `input_required` result: the questions, and a `requestState` that
//! holds the answers received so far. The state is sealed (HMAC-SHA256,
//! rmcp's [`RequestStateCodec`]) under a key the gateways of a mesh share,
//! bound to the caller, the request's method, the tool's (prompt's,
//! resource's) name and its arguments, and valid for
//! [`STATE_TTL`]: altered, replayed for another call or stale, it is
//! refused. With a legacy session the gateway sends the questions to the
//! client as requests on the session and runs the call again itself.

use super::Gateway;
use super::mcp::caller_of;
use crate::capability::ask::{Asking, ClientAbilities, MAX_ANSWERS, Question};
use rmcp::model::{
    ClientCapabilities, InputRequest, InputRequests, InputRequiredResult, InputResponses, RequestStateCodec,
    SealOptions, ServerRequest,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use toolmesh_registry::digest::Digest;

/// How long a request state may be echoed back.
pub const STATE_TTL: Duration = Duration::from_secs(600);

/// Rounds of questions a legacy session is asked for one request.
pub const MAX_ROUNDS: usize = 10;

/// The JetStream bucket where the gateways of a mesh keep the key they
/// seal request states with.
pub const KEYS_BUCKET: &str = "toolmesh_gateway_keys";

/// The key of that secret in the bucket.
pub const STATE_KEY: &str = "request-state";

/// What a request state holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The answers so far, by question key.
    #[serde(default)]
    pub answers: BTreeMap<String, Value>,
    /// The questions of the last round, whose answers the client sends next.
    #[serde(default)]
    pub asked: Vec<String>,
}

/// Seals and opens request states.
pub struct RequestStates {
    codec: RequestStateCodec,
}

impl std::fmt::Debug for RequestStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStates").finish_non_exhaustive()
    }
}

impl RequestStates {
    /// States sealed under `key` (at least 32 bytes).
    pub fn new(key: &[u8]) -> Result<Self, String> {
        RequestStateCodec::try_new(key.to_vec()).map(|codec| RequestStates { codec }).map_err(|e| e.to_string())
    }

    /// States sealed under a fresh random key: for a gateway alone.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        let key = match getrandom::fill(&mut key) {
            Ok(()) => key.to_vec(),
            // Without an entropy source, the time and process make a key
            // that at least differs between runs.
            Err(_) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                Digest::of(format!("{now:?}{}", std::process::id()).as_bytes()).to_string().into_bytes()
            }
        };
        // Both keys are at least 32 bytes, as the codec asks.
        let codec = RequestStateCodec::try_new(key.clone()).unwrap_or_else(|_| RequestStateCodec::new_unchecked(key));
        RequestStates { codec }
    }

    /// States sealed under the key the gateways on `client`'s NATS share:
    /// the first gateway makes it, the others read it. Without the bucket,
    /// a key of this gateway's own (a later round must come back here).
    pub async fn shared(client: &async_nats::Client) -> Self {
        use crate::usage::store::{NatsStore, modify};
        let shared = async {
            let store = NatsStore::open(client, KEYS_BUCKET, Duration::ZERO).await.map_err(|e| e.to_string())?;
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|e| e.to_string())?;
            let key = modify(&store, STATE_KEY, |current| match current.and_then(|v| v["key"].as_str()) {
                Some(key) => Ok::<_, String>((serde_json::json!({ "key": key }), key.to_owned())),
                None => {
                    let key = hex::encode(fresh);
                    Ok((serde_json::json!({ "key": key }), key))
                }
            })
            .await
            .map_err(|e| e.to_string())??;
            let key = hex::decode(key).map_err(|e| e.to_string())?;
            RequestStates::new(&key)
        };
        match shared.await {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!(error = %e, "request states are sealed by this gateway alone: {KEYS_BUCKET} cannot be used");
                Self::random()
            }
        }
    }

    /// Seals `state` for the request `binding` names.
    pub fn seal(&self, binding: &[u8], state: &State) -> Result<String, String> {
        let options = SealOptions::new().associated_data(binding).ttl(STATE_TTL);
        self.codec.seal_json_with(state, &options).map_err(|e| e.to_string())
    }

    /// Opens `sealed` for the request `binding` names, or says why not.
    pub fn open(&self, binding: &[u8], sealed: &str) -> Result<State, String> {
        self.codec
            .open_json_with(sealed, binding)
            .map_err(|e| format!("the request state is not one this server gave for this request: {e}"))
    }
}

/// What binds a request state to one request: who asks, the method, the
/// name and a digest of the arguments.
pub fn binding(caller: &str, method: &str, name: &str, arguments: &Value) -> Vec<u8> {
    let digest = Digest::of(arguments.to_string().as_bytes());
    format!("{caller}\n{method}\n{name}\n{digest}").into_bytes()
}

/// What the client of a request can answer, from its declared capabilities.
pub fn abilities(capabilities: Option<&ClientCapabilities>) -> ClientAbilities {
    ClientAbilities {
        elicitation: capabilities.is_some_and(|c| c.elicitation.is_some()),
        sampling: capabilities.is_some_and(|c| c.sampling.is_some()),
        roots: capabilities.is_some_and(|c| c.roots.is_some()),
    }
}

/// The answers a request brings: those its state holds, with the client's
/// responses to the questions the state says were asked last (others are
/// ignored). Without a state, the responses alone (bounded).
pub fn answers(
    states: &RequestStates,
    binding: &[u8],
    sealed: Option<&str>,
    responses: Option<InputResponses>,
) -> Result<BTreeMap<String, Value>, String> {
    let responses = responses.unwrap_or_default();
    let mut answers = match sealed {
        Some(sealed) => {
            let state = states.open(binding, sealed)?;
            let mut answers = state.answers;
            for key in state.asked {
                if let Some(response) = responses.get(&key) {
                    answers.insert(key, response.clone());
                }
            }
            return bounded(answers);
        }
        None => BTreeMap::new(),
    };
    answers.extend(responses);
    bounded(answers)
}

fn bounded(answers: BTreeMap<String, Value>) -> Result<BTreeMap<String, Value>, String> {
    if answers.len() > MAX_ANSWERS {
        return Err(format!("{} answers; a request takes at most {MAX_ANSWERS}", answers.len()));
    }
    Ok(answers)
}

/// The MCP input requests for `questions`, or which one is malformed.
pub fn input_requests(questions: &BTreeMap<String, Question>) -> Result<InputRequests, String> {
    questions
        .iter()
        .map(|(key, q)| {
            let request = serde_json::json!({"method": q.method, "params": q.params});
            serde_json::from_value(request)
                .map(|request| (key.clone(), request))
                .map_err(|e| format!("the tool asked a malformed {} (`{key}`): {e}", q.method))
        })
        .collect()
}

/// The state to send with `questions`, after `asking`'s answers.
pub fn next_state(asking: Option<&Arc<Asking>>, questions: &BTreeMap<String, Question>) -> State {
    State {
        answers: asking.map(|a| a.answers().clone()).unwrap_or_default(),
        asked: questions.keys().cloned().collect(),
    }
}

/// One round of a request that may ask its client questions.
pub(crate) enum Round<T> {
    /// The request is answered.
    Done(T),
    /// It asks these questions first.
    Asks(BTreeMap<String, Question>),
}

/// What a request that may ask its client came to.
pub(crate) enum Asked<T> {
    /// Its answer.
    Done(T),
    /// The questions to send a 2026-07-28 client, with the request state.
    InputRequired(InputRequiredResult),
}

/// What a request brings to its rounds of questions.
pub(crate) struct Questioned<'a> {
    pub context: &'a RequestContext<RoleServer>,
    pub method: &'static str,
    pub name: &'a str,
    pub arguments: Value,
    pub responses: Option<InputResponses>,
    pub state: Option<String>,
}

impl Gateway {
    /// Runs `round` with the answers `request` brings until it asks nothing
    /// new: a 2026-07-28 client gets the questions as an `input_required`
    /// result with a sealed request state; a legacy session is asked them
    /// on the session, and the round runs again (at most
    /// [`MAX_ROUNDS`] times).
    pub(crate) async fn with_questions<T, F, Fut>(
        &self,
        request: Questioned<'_>,
        mut round: F,
    ) -> Result<Asked<T>, McpError>
    where
        F: FnMut(Arc<Asking>) -> Fut,
        Fut: std::future::Future<Output = Result<Round<T>, McpError>>,
    {
        let context = request.context;
        let caller = caller_of(context);
        let states = self.request_states();
        let binding = binding(&caller.name, request.method, request.name, &request.arguments);
        let mut answers = answers(&states, &binding, request.state.as_deref(), request.responses)
            .map_err(|e| McpError::invalid_params(e, None))?;
        let abilities = abilities(context.client_capabilities().as_ref());
        let modern = context.protocol_version().is_some_and(|v| v.to_string().as_str() >= "2026-07-28");
        for _ in 0..MAX_ROUNDS {
            let asking =
                Arc::new(Asking::new(abilities, answers.clone()).map_err(|e| McpError::invalid_params(e.0, None))?);
            let asked = match round(asking.clone()).await? {
                Round::Done(answer) => return Ok(Asked::Done(answer)),
                Round::Asks(asked) => asked,
            };
            let requests = input_requests(&asked).map_err(|e| McpError::internal_error(e, None))?;
            if modern {
                let state = next_state(Some(&asking), &asked);
                let sealed = states.seal(&binding, &state).map_err(|e| McpError::internal_error(e, None))?;
                return Ok(Asked::InputRequired(InputRequiredResult::new(Some(requests), Some(sealed))));
            }
            for (key, input) in requests {
                answers.insert(key, ask_on_session(&context.peer, input).await?);
            }
        }
        Err(McpError::internal_error(
            format!("`{}` asked its client questions more than {} times", request.name, MAX_ROUNDS),
            None,
        ))
    }
}

/// Asks a legacy session's client `input` as a request on the session, and
/// waits (bounded) for its answer.
async fn ask_on_session(peer: &rmcp::Peer<RoleServer>, input: InputRequest) -> Result<Value, McpError> {
    let method =
        serde_json::to_value(&input).ok().and_then(|v| v["method"].as_str().map(str::to_owned)).unwrap_or_default();
    let request: ServerRequest = serde_json::to_value(&input)
        .and_then(serde_json::from_value)
        .map_err(|e| McpError::internal_error(format!("cannot send {method} to the client: {e}"), None))?;
    match tokio::time::timeout(STATE_TTL, peer.send_request(request)).await {
        Ok(Ok(answer)) => Ok(serde_json::to_value(answer).unwrap_or(Value::Null)),
        Ok(Err(e)) => Err(McpError::internal_error(format!("the client did not answer {method}: {e}"), None)),
        Err(_) => Err(McpError::internal_error(format!("the client did not answer {method} in time"), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_are_bound_to_their_request_and_refused_when_altered() {
        let states = RequestStates::random();
        let here = binding("ada", "tools/call", "greet", &json!({"a": 1}));
        let state = State { answers: BTreeMap::from([("k".into(), json!(1))]), asked: vec!["name".into()] };
        let sealed = states.seal(&here, &state).unwrap();
        assert_eq!(states.open(&here, &sealed).unwrap(), state);
        // Another caller, tool or arguments: refused.
        for other in [
            binding("eve", "tools/call", "greet", &json!({"a": 1})),
            binding("ada", "tools/call", "other", &json!({"a": 1})),
            binding("ada", "tools/call", "greet", &json!({"a": 2})),
            binding("ada", "prompts/get", "greet", &json!({"a": 1})),
        ] {
            assert!(states.open(&other, &sealed).is_err());
        }
        // One character changed: refused.
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(states.open(&here, &String::from_utf8(tampered).unwrap()).is_err());
        // Another gateway's key: refused.
        assert!(RequestStates::random().open(&here, &sealed).is_err());
    }

    #[test]
    fn answers_come_from_the_state_and_the_questions_it_asked() {
        let states = RequestStates::random();
        let here = binding("ada", "tools/call", "t", &json!({}));
        let state = State { answers: BTreeMap::from([("step1".into(), json!("a"))]), asked: vec!["step2".into()] };
        let sealed = states.seal(&here, &state).unwrap();
        let responses = BTreeMap::from([("step2".into(), json!("b")), ("extra".into(), json!("x"))]);
        let answers = answers(&states, &here, Some(&sealed), Some(responses)).unwrap();
        assert_eq!(answers, BTreeMap::from([("step1".into(), json!("a")), ("step2".into(), json!("b"))]));
        let flood: InputResponses = (0..=MAX_ANSWERS).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(super::answers(&states, &here, None, Some(flood)).is_err());
    }

    #[test]
    fn questions_become_input_requests_or_are_named_as_malformed() {
        let form = Question {
            method: "elicitation/create".into(),
            params: json!({"message": "Name?", "requestedSchema": {"type": "object", "properties": {}}})
                .as_object()
                .unwrap()
                .clone(),
        };
        let roots = Question { method: "roots/list".into(), params: Default::default() };
        let requests = input_requests(&BTreeMap::from([("a".into(), form), ("b".into(), roots)])).unwrap();
        let wire = serde_json::to_value(&requests).unwrap();
        assert_eq!(wire["a"]["method"], "elicitation/create");
        assert_eq!(wire["b"]["method"], "roots/list");
        let bad = Question { method: "sampling/createMessage".into(), params: Default::default() };
        assert!(input_requests(&BTreeMap::from([("s".into(), bad)])).unwrap_err().contains("`s`"));
    }
}
