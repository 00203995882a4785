//! How the gateway's tasks and results look to A2A clients: tasks with
//! their `TASK_STATE_*`, status messages and artifacts, and MCP content as
//! A2A parts.

use super::super::tasks::{self, Record, Status};
use serde_json::{Value, json};

/// A task of no skill, rejected with `why`.
pub(super) fn rejected(why: &str) -> Value {
    let id = tasks::new_id();
    json!({
        "id": id,
        "contextId": id,
        "status": {"state": "TASK_STATE_REJECTED", "message": agent_message(why), "timestamp": now()},
    })
}

/// The current time, as task timestamps have it.
fn now() -> String {
    crate::web::pages::rfc3339(std::time::SystemTime::now())
}

/// A message from this agent saying `text`.
fn agent_message(text: &str) -> Value {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    json!({"messageId": hex::encode(bytes), "role": "ROLE_AGENT", "parts": [{"text": text}]})
}

/// The A2A task of MCP task `record`.
pub(super) fn a2a_task(record: &Record) -> Value {
    let mut status = json!({"timestamp": record.updated});
    let mut task = json!({"id": record.id, "contextId": record.id});
    match record.status {
        Status::Working => {
            status["state"] = "TASK_STATE_WORKING".into();
            if let Some(message) = &record.message {
                status["message"] = agent_message(message);
            }
        }
        Status::InputRequired => {
            status["state"] = "TASK_STATE_INPUT_REQUIRED".into();
            let asked: Vec<String> = record
                .questions
                .values()
                .map(|q| q.params.get("message").and_then(Value::as_str).unwrap_or(&q.method).to_owned())
                .collect();
            status["message"] = agent_message(&format!(
                "the tool asks what an A2A caller cannot answer here: {}",
                if asked.is_empty() { "a question".to_owned() } else { asked.join("; ") }
            ));
        }
        Status::Completed => {
            let result = record.result.clone().unwrap_or_default();
            if result["isError"] == true {
                status["state"] = "TASK_STATE_FAILED".into();
                status["message"] = agent_message(&texts(&result).join("\n"));
            } else {
                status["state"] = "TASK_STATE_COMPLETED".into();
                task["artifacts"] = json!([{
                    "artifactId": format!("{}-result", record.id),
                    "name": format!("{} result", record.tool),
                    "parts": parts(&result),
                }]);
            }
        }
        Status::Failed => {
            status["state"] = "TASK_STATE_FAILED".into();
            let error = record.error.clone().unwrap_or_default();
            status["message"] = agent_message(error["message"].as_str().unwrap_or("the call failed"));
        }
        Status::Cancelled => status["state"] = "TASK_STATE_CANCELED".into(),
    }
    task["status"] = status;
    task
}

/// The text items of an MCP result.
fn texts(result: &Value) -> Vec<String> {
    let content = result["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    content.iter().filter_map(|c| c["text"].as_str().map(str::to_owned)).collect()
}

/// The A2A parts of an MCP result: its structured content as one data
/// part, then each item as the part it is (the structured content's own
/// text copy left out).
fn parts(result: &Value) -> Vec<Value> {
    let structured = result["structuredContent"].is_object().then(|| &result["structuredContent"]);
    let is_copy = |item: &Value| {
        let text = item["text"].as_str().filter(|_| item["type"] == "text");
        matches!((structured, text), (Some(s), Some(t)) if serde_json::from_str::<Value>(t).ok().as_ref() == Some(s))
    };
    let data = structured.map(|s| json!({"data": s, "mediaType": "application/json"}));
    let content = result["content"].as_array().map(Vec::as_slice).unwrap_or_default();
    let items = content.iter().filter(|item| !is_copy(item)).filter_map(|item| match item["type"].as_str()? {
        "text" => Some(json!({"text": item["text"], "mediaType": "text/plain"})),
        "image" | "audio" => Some(json!({"raw": item["data"], "mediaType": item["mimeType"]})),
        "resource" => {
            let resource = &item["resource"];
            let mut part = match (resource.get("text"), resource.get("blob")) {
                (Some(text), _) => json!({"text": text}),
                (None, Some(blob)) => json!({"raw": blob}),
                _ => return None,
            };
            part["metadata"] = json!({"uri": resource["uri"]});
            if let Some(mime) = resource.get("mimeType") {
                part["mediaType"] = mime.clone();
            }
            Some(part)
        }
        "resource_link" => Some(json!({"url": item["uri"], "filename": item["name"]})),
        _ => None,
    });
    data.into_iter().chain(items).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_parts() {
        let structured = json!({"content": [{"type": "text", "text": "{\"a\":1}"}], "structuredContent": {"a": 1}});
        assert_eq!(parts(&structured), [json!({"data": {"a": 1}, "mediaType": "application/json"})]);
        // A bridged server's own words stay beside its structured content.
        let worded = json!({"content": [{"type": "text", "text": "one"}], "structuredContent": {"a": 1}});
        let data = json!({"data": {"a": 1}, "mediaType": "application/json"});
        assert_eq!(parts(&worded), [data, json!({"text": "one", "mediaType": "text/plain"})]);
        let mixed = json!({"content": [
            {"type": "text", "text": "hi"},
            {"type": "image", "data": "AQI=", "mimeType": "image/png"},
            {"type": "resource_link", "uri": "notes://a", "name": "a"}]});
        assert_eq!(
            parts(&mixed),
            [
                json!({"text": "hi", "mediaType": "text/plain"}),
                json!({"raw": "AQI=", "mediaType": "image/png"}),
                json!({"url": "notes://a", "filename": "a"}),
            ]
        );
    }
}
