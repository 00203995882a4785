//! `toolmesh:tool/ask`: a call's questions to the client that made it —
//! the user (elicitation), the client's model (sampling), its roots.
//!
//! A call is never suspended. [`Asking`] holds the answers the call has
//! received so far and what the client can answer; a question it has no
//! answer to is recorded as pending and answered `pending`, and the call
//! ends. Whoever made the call (the gateway) then asks the client and runs
//! the call again with the answers, until a run asks nothing new. Without
//! an [`Asking`] from the gateway (a call from code, the CLI) every
//! question is refused.

use crate::sandbox::CallState;
use crate::sandbox::bindings::toolmesh::tool::ask::{AskError, Host};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Questions one run may leave pending.
pub const MAX_PENDING: usize = 16;

/// Answers one call may gather over all its runs.
pub const MAX_ANSWERS: usize = 64;

/// Bytes of one question's parameters.
pub const MAX_PARAMS: usize = 64 << 10;

/// What the client that made a call can answer (its declared capabilities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAbilities {
    /// Forms for the user (`elicitation`).
    #[serde(default)]
    pub elicitation: bool,
    /// Completions from its model (`sampling`).
    #[serde(default)]
    pub sampling: bool,
    /// Its roots (`roots`).
    #[serde(default)]
    pub roots: bool,
}

impl ClientAbilities {
    /// Whether `answer` has the shape of a client's result to `method`
    /// (an elicitation's action, a sampled message, a list of roots).
    fn fits(method: &str, answer: &Value) -> bool {
        match method {
            "elicitation/create" => {
                matches!(answer["action"].as_str(), Some("accept" | "decline" | "cancel"))
                    && (answer.get("content").is_none_or(|c| c.is_object() || c.is_null()))
            }
            "sampling/createMessage" => {
                answer["role"].is_string() && (answer["content"].is_object() || answer["content"].is_array())
            }
            "roots/list" => answer["roots"].is_array(),
            _ => false,
        }
    }

    /// The capability `method` needs, and whether the client has it;
    /// `None` for a method no one may ask.
    fn needs(&self, method: &str) -> Option<(&'static str, bool)> {
        match method {
            "elicitation/create" => Some(("elicitation", self.elicitation)),
            "sampling/createMessage" => Some(("sampling", self.sampling)),
            "roots/list" => Some(("roots", self.roots)),
            _ => None,
        }
    }
}

/// One question to the client: an MCP request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    /// `elicitation/create`, `sampling/createMessage` or `roots/list`.
    pub method: String,
    /// Its parameters.
    pub params: Map<String, Value>,
}

/// What a call may ask, what it has been answered, and what it asked
/// without an answer.
#[derive(Debug, Default)]
pub struct Asking {
    /// Whether the call may ask at all.
    enabled: bool,
    abilities: ClientAbilities,
    answers: BTreeMap<String, Value>,
    pending: Mutex<BTreeMap<String, Question>>,
    /// The capabilities the call asked for and the client lacks.
    missing: Mutex<std::collections::BTreeSet<&'static str>>,
}

/// Why answers could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AskingError(pub String);

impl Asking {
    /// A call whose client can answer `abilities`, with `answers` (by key)
    /// from earlier runs.
    pub fn new(abilities: ClientAbilities, answers: BTreeMap<String, Value>) -> Result<Self, AskingError> {
        if answers.len() > MAX_ANSWERS {
            return Err(AskingError(format!(
                "the call has been answered {} questions; at most {MAX_ANSWERS}",
                answers.len()
            )));
        }
        Ok(Asking { enabled: true, abilities, answers, pending: Mutex::default(), missing: Mutex::default() })
    }

    /// What the client can answer.
    pub fn abilities(&self) -> ClientAbilities {
        self.abilities
    }

    /// The answers so far, by key.
    pub fn answers(&self) -> &BTreeMap<String, Value> {
        &self.answers
    }

    /// Takes the questions the run left without an answer, by key.
    pub fn take_pending(&self) -> BTreeMap<String, Question> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The client capabilities the call asked for and did not get (such
    /// as `sampling`): if it then failed, it failed for want of them.
    pub fn missing(&self) -> Vec<&'static str> {
        self.missing.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }

    /// Answers question `key` (`method` with JSON `params`), or records it.
    fn ask(&self, key: &str, method: &str, params: &str) -> Result<String, AskError> {
        if !self.enabled {
            return Err(AskError::Refused(
                "this call cannot ask its client anything (it was not made by an MCP client, or it was made from code)"
                    .into(),
            ));
        }
        if key.is_empty() || key.len() > 64 || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            return Err(AskError::Refused(format!("question key {key:?} is not 1-64 of [A-Za-z0-9_.-]")));
        }
        let Some((capability, able)) = self.abilities.needs(method) else {
            return Err(AskError::Refused(format!(
                "cannot ask `{method}`: a tool may ask elicitation/create, sampling/createMessage or roots/list"
            )));
        };
        if !able {
            self.missing.lock().unwrap_or_else(|e| e.into_inner()).insert(capability);
            return Err(AskError::Unsupported(format!(
                "the client cannot answer {method}: it did not declare the `{capability}` capability"
            )));
        }
        if params.len() > MAX_PARAMS {
            return Err(AskError::Refused(format!("the parameters of question `{key}` are over {MAX_PARAMS} bytes")));
        }
        let params: Map<String, Value> = serde_json::from_str(params)
            .map_err(|e| AskError::Refused(format!("the parameters of question `{key}` are not a JSON object: {e}")))?;
        // An answer that does not fit the question is asked again.
        if let Some(answer) = self.answers.get(key).filter(|answer| ClientAbilities::fits(method, answer)) {
            return Ok(answer.to_string());
        }
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.contains_key(key) && pending.len() >= MAX_PENDING {
            return Err(AskError::Refused(format!("at most {MAX_PENDING} questions may wait at once")));
        }
        if self.answers.len() + pending.len() >= MAX_ANSWERS && !pending.contains_key(key) {
            return Err(AskError::Refused(format!("a call may ask at most {MAX_ANSWERS} questions")));
        }
        pending.insert(key.to_owned(), Question { method: method.to_owned(), params });
        Err(AskError::Pending)
    }
}

impl Host for CallState {
    fn request(&mut self, key: String, method: String, params: String) -> Result<String, AskError> {
        let asked = self.ask.ask(&key, &method, &params);
        tracing::debug!(call = %self.call_id, key, method, answered = asked.is_ok(), "question to the client");
        asked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FORM: &str = r#"{"message": "Name?", "requestedSchema": {"type": "object"}}"#;

    fn able() -> ClientAbilities {
        ClientAbilities { elicitation: true, sampling: true, roots: false }
    }

    #[test]
    fn unanswered_questions_wait_and_answered_ones_are_answered() {
        let asking = Asking::new(able(), BTreeMap::from([("name".into(), json!({"action": "accept"}))])).unwrap();
        assert!(matches!(asking.ask("name", "elicitation/create", FORM), Ok(a) if a == r#"{"action":"accept"}"#));
        assert!(matches!(asking.ask("model", "sampling/createMessage", r#"{"messages": []}"#), Err(AskError::Pending)));
        let pending = asking.take_pending();
        assert_eq!(pending.keys().collect::<Vec<_>>(), ["model"]);
        assert_eq!(pending["model"].method, "sampling/createMessage");
        assert!(asking.take_pending().is_empty());
        // An answer of the wrong shape is no answer: the question waits again.
        let odd = Asking::new(able(), BTreeMap::from([("name".into(), json!(42))])).unwrap();
        assert!(matches!(odd.ask("name", "elicitation/create", FORM), Err(AskError::Pending)));
    }

    #[test]
    fn questions_the_client_cannot_answer_or_no_one_may_ask_are_refused() {
        let asking = Asking::new(able(), BTreeMap::new()).unwrap();
        assert!(matches!(asking.ask("r", "roots/list", "{}"), Err(AskError::Unsupported(m)) if m.contains("`roots`")));
        assert_eq!(asking.missing(), ["roots"]);
        assert!(matches!(asking.ask("p", "ping", "{}"), Err(AskError::Refused(_))));
        assert!(matches!(asking.ask("bad key", "roots/list", "{}"), Err(AskError::Refused(_))));
        assert!(matches!(asking.ask("k", "elicitation/create", "[1]"), Err(AskError::Refused(_))));
        let big = format!(r#"{{"message": "{}"}}"#, "x".repeat(MAX_PARAMS));
        assert!(matches!(asking.ask("k", "elicitation/create", &big), Err(AskError::Refused(_))));
        assert!(matches!(Asking::default().ask("k", "elicitation/create", FORM), Err(AskError::Refused(_))));
    }

    #[test]
    fn a_call_asking_in_a_loop_is_stopped() {
        let asking = Asking::new(able(), BTreeMap::new()).unwrap();
        for i in 0..MAX_PENDING {
            assert!(matches!(asking.ask(&format!("q{i}"), "elicitation/create", FORM), Err(AskError::Pending)));
        }
        assert!(matches!(asking.ask("one-more", "elicitation/create", FORM), Err(AskError::Refused(_))));
        let answers: BTreeMap<String, Value> = (0..=MAX_ANSWERS).map(|i| (format!("q{i}"), json!({}))).collect();
        assert!(Asking::new(able(), answers).is_err());
    }
}
