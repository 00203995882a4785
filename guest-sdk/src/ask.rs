//! Asking back: a form for the user ([`elicit`]), a completion from the
//! client's model ([`sample`]), the client's roots ([`roots`]).
//!
//! A call is never suspended while it waits. A question without an answer
//! yet makes the call end (`?` turns [`AskError::Pending`] into a
//! [`ToolError`] the host discards); the host asks the client and runs the
//! call again from the start with every answer so far. So ask the same
//! questions under the same keys on every run, before doing anything you
//! cannot repeat:
//!
//! ```ignore
//! use toolmesh_guest::ask;
//!
//! fn book(args: Trip) -> Result<String, ToolError> {
//!     let form = serde_json::json!({"type": "object", "properties": {"seat": {"type": "string"}}});
//!     let seat = match ask::elicit("seat", "Which seat?", form)? {
//!         ask::Elicited::Accepted(values) => values["seat"].as_str().unwrap_or("any").to_owned(),
//!         _ => return Err(ToolError::failed("the user declined")),
//!     };
//!     Ok(format!("Booked {} in seat {seat}", args.flight))
//! }
//! ```
//!
//! Several questions may be asked in one run: ask them all, then use `?`,
//! and the client gets them together.

use crate::ToolError;
use crate::bindings::toolmesh::tool::ask as wit;
use serde_json::{Map, Value, json};

/// Why a question got no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AskError {
    /// The client cannot answer this kind of question.
    Unsupported(String),
    /// Not answered yet: end the call, it runs again with the answer.
    Pending,
    /// The question was refused (malformed, too many, or this call cannot ask).
    Refused(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Unsupported(m) | AskError::Refused(m) => f.write_str(m),
            AskError::Pending => f.write_str("waiting for the client's answer"),
        }
    }
}

impl std::error::Error for AskError {}

impl From<AskError> for ToolError {
    fn from(error: AskError) -> Self {
        ToolError::failed(error)
    }
}

impl From<AskError> for crate::OfferError {
    fn from(error: AskError) -> Self {
        crate::OfferError::failed(error)
    }
}

/// Asks the client `method` with `params`; `key` names the question
/// within the call. The client's result, as JSON.
pub fn request(key: &str, method: &str, params: &Value) -> Result<Value, AskError> {
    match wit::request(key, method, &params.to_string()) {
        Ok(answer) => {
            serde_json::from_str(&answer).map_err(|e| AskError::Refused(format!("the answer is not JSON: {e}")))
        }
        Err(wit::AskError::Unsupported(m)) => Err(AskError::Unsupported(m)),
        Err(wit::AskError::Pending) => Err(AskError::Pending),
        Err(wit::AskError::Refused(m)) => Err(AskError::Refused(m)),
    }
}

/// What the user did with a form.
#[derive(Debug, Clone, PartialEq)]
pub enum Elicited {
    /// Filled it in and sent it: the values, by field.
    Accepted(Map<String, Value>),
    /// Said no.
    Declined,
    /// Dismissed it.
    Cancelled,
}

/// Asks the user to fill in a form: `message` says why, `schema` is a flat
/// JSON Schema object of the fields (strings, numbers, booleans, enums).
pub fn elicit(key: &str, message: &str, schema: Value) -> Result<Elicited, AskError> {
    let answer = request(key, "elicitation/create", &json!({"message": message, "requestedSchema": schema}))?;
    Ok(match answer["action"].as_str() {
        Some("accept") => Elicited::Accepted(answer["content"].as_object().cloned().unwrap_or_default()),
        Some("decline") => Elicited::Declined,
        _ => Elicited::Cancelled,
    })
}

/// Asks the client's model to answer `prompt`, in at most `max_tokens`
/// tokens; the text of its reply.
pub fn sample(key: &str, prompt: &str, max_tokens: u32) -> Result<String, AskError> {
    let params = json!({
        "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}],
        "maxTokens": max_tokens,
    });
    let answer = request(key, "sampling/createMessage", &params)?;
    let content = &answer["content"];
    // One content block, or (since 2025-11-25) a list of them.
    let texts: Vec<&str> = match content {
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect(),
        block => block["text"].as_str().into_iter().collect(),
    };
    Ok(texts.join(""))
}

/// A root the client shares: a URI and its name.
#[derive(Debug, Clone, PartialEq)]
pub struct Root {
    /// The URI, such as `file:///home/ada/project`.
    pub uri: String,
    /// Its name, if given.
    pub name: Option<String>,
}

/// Asks the client for its roots.
pub fn roots(key: &str) -> Result<Vec<Root>, AskError> {
    let answer = request(key, "roots/list", &json!({}))?;
    Ok(answer["roots"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some(Root { uri: r["uri"].as_str()?.to_owned(), name: r["name"].as_str().map(str::to_owned) }))
        .collect())
}
