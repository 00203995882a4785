//! What a tool asks for and promises, in plain words for the people who
//! decide whether their agent may use it (pure).

use serde_json::Value;
use toolmesh_registry::request::{ToolRequest, size_words};

/// One sentence per thing `request` asks of the node that runs it; one
/// sentence saying so when it asks for nothing.
pub fn permissions(request: &ToolRequest) -> Vec<String> {
    let mut out = Vec::new();
    for rule in &request.network {
        let methods = if rule.methods.iter().any(|m| m == "*") {
            "any kind of request".to_owned()
        } else {
            format!("{} requests", rule.methods.join(", "))
        };
        let port = rule.port.map(|p| format!(" on port {p}")).unwrap_or_default();
        out.push(format!(
            "Connects to the internet: makes {methods} to {}://{}{port}.",
            rule.scheme.as_str(),
            rule.host
        ));
    }
    if let Some(bytes) = request.scratch_bytes {
        out.push(format!(
            "Writes files in a private scratch directory of up to {}, emptied after every call \
             (it sees no other files).",
            size_words(bytes)
        ));
    }
    if !request.secrets.is_empty() {
        out.push(format!(
            "Reads the secret{} {}, which the node's operator must supply.",
            if request.secrets.len() == 1 { "" } else { "s" },
            request.secrets.join(", ")
        ));
    }
    for rule in &request.files {
        out.push(if rule.write {
            format!(
                "Reads and writes files in the node's directory it sees at {}, where the node's operator lends one.",
                rule.path
            )
        } else {
            format!(
                "Reads files in the node's directory it sees at {}, where the node's operator lends one.",
                rule.path
            )
        });
    }
    if !request.config.is_empty() {
        let keys: Vec<&str> = request.config.keys().map(String::as_str).collect();
        out.push(format!("Reads configuration values: {}.", keys.join(", ")));
    }
    if request.requires_gpu() {
        out.push("Runs compute kernels on the GPU (within the node's limits on memory and time).".into());
    } else if request.gpu_optional {
        out.push(
            "Runs compute kernels on the GPU where a node grants one (within its limits on memory and time), and on the CPU elsewhere.".into(),
        );
    }
    if request.tools {
        out.push(
            "Calls other tools of this server as you, with your rights and quotas (within limits on depth, number and time)."
                .into(),
        );
    }
    if let Some(bytes) = request.memory_bytes {
        out.push(format!("Needs up to {} of memory per call.", size_words(bytes)));
    }
    if let Some(ms) = request.timeout_ms {
        let time = if ms.is_multiple_of(1000) { format!("{} s", ms / 1000) } else { format!("{ms} ms") };
        out.push(format!("May run for up to {time} per call."));
    }
    if out.is_empty() {
        out.push("Asks for nothing: it computes on its inputs alone, with no network, files, secrets or GPU.".into());
    }
    out
}

/// A short label per thing `request` asks for (for search results).
pub fn permission_labels(request: &ToolRequest) -> Vec<String> {
    let mut out: Vec<String> = request.network.iter().map(|rule| format!("network: {}", rule.host)).collect();
    if request.scratch_bytes.is_some() {
        out.push("scratch files".into());
    }
    if !request.secrets.is_empty() {
        out.push("secrets".into());
    }
    out.extend(request.files.iter().map(|r| format!("files: {}{}", r.path, if r.write { " (write)" } else { "" })));
    if request.requires_gpu() {
        out.push("GPU".into());
    } else if request.gpu_optional {
        out.push("GPU optional".into());
    }
    if request.tools {
        out.push("calls tools".into());
    }
    if request.memory_bytes.is_some() || request.timeout_ms.is_some() {
        out.push("larger limits".into());
    }
    out
}

/// What a tool's MCP annotations promise, one `(label, meaning)` per hint
/// it sets.
pub fn annotations(annotations: &Value) -> Vec<(String, String)> {
    let hint = |name: &str| annotations.get(name).and_then(Value::as_bool);
    let mut out = Vec::new();
    match (hint("readOnlyHint"), hint("destructiveHint")) {
        (Some(true), _) => out.push(("read-only", "does not change anything outside the call")),
        (_, Some(true)) => out.push(("destructive", "may delete or overwrite things")),
        (_, Some(false)) => out.push(("additive", "may add things, never deletes or overwrites")),
        _ => {}
    }
    if hint("idempotentHint") == Some(true) {
        out.push(("idempotent", "calling it again with the same arguments changes nothing more"));
    }
    match hint("openWorldHint") {
        Some(true) => out.push(("open world", "reaches things outside the node, such as the web")),
        Some(false) => out.push(("closed world", "works only on what it is given")),
        None => {}
    }
    out.into_iter().map(|(label, meaning)| (label.to_owned(), meaning.to_owned())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permissions_read_as_sentences() {
        let request = ToolRequest::from_annotation(Some(
            r#"{"format": 1, "network": [{"scheme": "https", "host": "api.example.com", "methods": ["GET"]}],
                "scratch_bytes": 1048576, "secrets": ["API_KEY"], "gpu": true, "timeout_ms": 30000}"#,
        ))
        .unwrap();
        let words = permissions(&request);
        assert_eq!(words[0], "Connects to the internet: makes GET requests to https://api.example.com.");
        assert!(words[1].contains("scratch directory of up to 1 MiB"), "{words:?}");
        assert_eq!(words[2], "Reads the secret API_KEY, which the node's operator must supply.");
        assert!(words[3].contains("GPU"));
        assert_eq!(words[4], "May run for up to 30 s per call.");
        assert_eq!(
            permission_labels(&request),
            ["network: api.example.com", "scratch files", "secrets", "GPU", "larger limits"]
        );
        assert!(permissions(&ToolRequest::default())[0].starts_with("Asks for nothing"));
        assert!(permission_labels(&ToolRequest::default()).is_empty());
    }

    #[test]
    fn annotations_name_their_promise() {
        let labels = |v: Value| annotations(&v).into_iter().map(|(l, _)| l).collect::<Vec<_>>();
        assert_eq!(labels(json!({"readOnlyHint": true, "openWorldHint": false})), ["read-only", "closed world"]);
        assert_eq!(labels(json!({"destructiveHint": true, "idempotentHint": true})), ["destructive", "idempotent"]);
        assert!(labels(json!(null)).is_empty());
    }
}
