//! Finding tools in a big catalog: tools ranked for a query the way the
//! web pages rank packages, each with a TypeScript-style signature made
//! from its JSON Schemas, so a model can write code that calls it without
//! reading every schema (pure).

use super::catalog::{Catalog, CatalogTool};
use crate::auth::Caller;
use crate::web::search::{Fields, score_fields, words};
use serde_json::{Map, Value, json};

/// The name of the tool that finds tools, in [`ToolSearch`] mode.
pub const SEARCH_TOOL: &str = "search_tools";

/// Tools `search_tools` returns at most.
const MAX_FOUND: u64 = 50;

/// A gateway mode for big catalogs: `tools/list` shows [`SEARCH_TOOL`] and
/// the tools whose names match `listed` (the code tools, say), so a model
/// sees a few tools instead of hundreds; every tool stays callable by
/// name, directly or from code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSearch {
    /// Patterns of names still listed (`*` stands for any run of characters).
    pub listed: Vec<String>,
}

impl ToolSearch {
    /// Whether catalog tool `name` is listed.
    pub fn lists(&self, name: &str) -> bool {
        self.listed.iter().any(|pattern| crate::auth::access::matches(pattern, name))
    }

    /// The MCP description of [`SEARCH_TOOL`], as JSON.
    pub fn tool() -> Value {
        json!({
            "name": SEARCH_TOOL,
            "title": "Search tools",
            "description": "Finds tools of this server for a task. This server has more tools than it lists: \
                search with a few words (\"slug url\", \"resize image\") and get each match's name, one-line \
                description and TypeScript-style signature. Call a found tool directly by its name, or from code \
                (run_javascript: `await tools.call(name, args)`; run_python: `tools.call(name, args)`), which can \
                combine several calls and return only what matters.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Words to look for in tool names and descriptions."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_FOUND, "description": "Most tools to return (10 unless given)."}
                },
                "required": ["query"],
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "tools": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "signature": {"type": "string"}
                            },
                            "required": ["name", "description", "signature"]
                        }
                    }
                },
                "required": ["tools"]
            },
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false}
        })
    }

    /// What [`SEARCH_TOOL`] answers `arguments` with for `caller`: the found
    /// tools as JSON and as text; or why the arguments do not do.
    pub fn answer(
        catalog: &Catalog,
        caller: &Caller,
        arguments: &Map<String, Value>,
    ) -> Result<(Value, String), String> {
        let Some(query) = arguments.get("query").and_then(Value::as_str) else {
            return Err("`query` must be a string".into());
        };
        let limit = match arguments.get("limit") {
            None => 10,
            Some(limit) => limit
                .as_u64()
                .filter(|n| (1..=MAX_FOUND).contains(n))
                .ok_or_else(|| format!("`limit` must be an integer from 1 to {MAX_FOUND}"))?,
        };
        if let Some(extra) = arguments.keys().find(|k| !matches!(k.as_str(), "query" | "limit")) {
            return Err(format!("unknown argument `{extra}`"));
        }
        let found = find(catalog, caller, query, limit as usize);
        let text = if found.is_empty() {
            format!("No tool matches {query:?}.")
        } else {
            found.iter().map(|t| format!("{}\n  {}", signature(t), summary(t))).collect::<Vec<_>>().join("\n")
        };
        let tools: Vec<Value> = found
            .iter()
            .map(|t| json!({"name": t.name, "description": summary(t), "signature": signature(t)}))
            .collect();
        Ok((json!({ "tools": tools }), text))
    }
}

/// Characters of a signature's argument or result type, at most.
const MAX_TYPE: usize = 600;

/// How deep a signature spells out nested types before writing `object`.
const MAX_DEPTH: usize = 4;

/// The tools of `catalog` that `caller` may use and that match `query`
/// (all of them when it is empty), best first, by name when equal; at
/// most `limit`.
pub fn find<'a>(catalog: &'a Catalog, caller: &Caller, query: &str, limit: usize) -> Vec<&'a CatalogTool> {
    let words = words(query);
    let mut hits: Vec<(u32, &CatalogTool)> = catalog
        .tools()
        .map(|tool| tool.as_ref())
        .filter(|tool| caller.may_call(&tool.name))
        .filter_map(|tool| {
            if words.is_empty() {
                return Some((0, tool));
            }
            let fields = Fields {
                name: tool.name.to_lowercase(),
                short: tool.tool.to_lowercase(),
                description: description(tool).to_lowercase(),
                parts: Vec::new(),
            };
            score_fields(&fields, &words).map(|score| (score, tool))
        })
        .collect();
    hits.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.name.cmp(&y.name)));
    hits.into_iter().take(limit).map(|(_, tool)| tool).collect()
}

/// The tool's description as published.
pub fn description(tool: &CatalogTool) -> &str {
    tool.descriptor["description"].as_str().unwrap_or_default()
}

/// The first line of the tool's description.
pub fn summary(tool: &CatalogTool) -> &str {
    description(tool).lines().find(|line| !line.trim().is_empty()).unwrap_or_default().trim()
}

/// The tool as code sees it: `name(args: {…}): Result`.
pub fn signature(tool: &CatalogTool) -> String {
    let d = &tool.descriptor;
    let output = if d["output_schema"].is_object() { type_of(&d["output_schema"]) } else { "unknown".to_owned() };
    format!("{}(args: {}): {}", tool.name, type_of(&d["input_schema"]), output)
}

/// A JSON document describing `tool` for code: name, description, schemas
/// and signature.
pub fn described(tool: &CatalogTool) -> Value {
    let d = &tool.descriptor;
    json!({
        "name": tool.name,
        "description": description(tool),
        "inputSchema": d["input_schema"],
        "outputSchema": d["output_schema"],
        "signature": signature(tool),
    })
}

/// `schema` as a TypeScript type, cut to [`MAX_TYPE`] characters.
pub fn type_of(schema: &Value) -> String {
    let mut text = ts(schema, 0);
    if text.chars().count() > MAX_TYPE {
        text = text.chars().take(MAX_TYPE).collect::<String>() + "…";
    }
    text
}

fn ts(schema: &Value, depth: usize) -> String {
    let Some(schema) = schema.as_object() else {
        // `true` (anything) or `false` (nothing)
        return if *schema == Value::Bool(false) { "never".into() } else { "unknown".into() };
    };
    if let Some(value) = schema.get("const") {
        return value.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return union(values.iter().map(Value::to_string).collect());
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            return union(options.iter().map(|o| ts(o, depth + 1)).collect());
        }
    }
    match schema.get("type") {
        Some(Value::String(kind)) => of_type(kind, schema, depth),
        Some(Value::Array(kinds)) => {
            union(kinds.iter().filter_map(Value::as_str).map(|k| of_type(k, schema, depth)).collect())
        }
        _ if schema.contains_key("properties") => of_type("object", schema, depth),
        _ => "unknown".into(),
    }
}

fn of_type(kind: &str, schema: &Map<String, Value>, depth: usize) -> String {
    match kind {
        "string" => "string".into(),
        "integer" | "number" => "number".into(),
        "boolean" => "boolean".into(),
        "null" => "null".into(),
        "array" if depth >= MAX_DEPTH => "unknown[]".into(),
        "array" => match schema.get("items") {
            Some(items) => {
                let item = ts(items, depth + 1);
                if item.contains(['|', ' ']) { format!("({item})[]") } else { format!("{item}[]") }
            }
            None => "unknown[]".into(),
        },
        "object" if depth >= MAX_DEPTH => "object".into(),
        "object" => {
            let required: Vec<&str> = schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let fields: Vec<String> = schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, field)| {
                    let optional = if required.contains(&name.as_str()) { "" } else { "?" };
                    let key = if is_identifier(name) { name.clone() } else { Value::String(name.clone()).to_string() };
                    format!("{key}{optional}: {}", ts(field, depth + 1))
                })
                .collect();
            match (fields.is_empty(), schema.get("additionalProperties")) {
                (true, Some(extra @ Value::Object(_))) => format!("Record<string, {}>", ts(extra, depth + 1)),
                (true, _) => "{}".into(),
                (false, _) => format!("{{ {} }}", fields.join("; ")),
            }
        }
        _ => "unknown".into(),
    }
}

fn union(mut options: Vec<String>) -> String {
    options.dedup();
    match options.len() {
        0 => "never".into(),
        _ => options.join(" | "),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_read_as_typescript() {
        let schema = json!({
            "type": "object",
            "properties": {
                "text": {"type": "string"},
                "max-len": {"type": "integer"},
                "mode": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": ["string", "null"]}},
                "extra": {"type": "object", "additionalProperties": {"type": "number"}},
                "pick": {"oneOf": [{"type": "boolean"}, {"const": 3}]}
            },
            "required": ["text"]
        });
        assert_eq!(
            type_of(&schema),
            r#"{ extra?: Record<string, number>; "max-len"?: number; mode?: "a" | "b"; pick?: boolean | 3; tags?: (string | null)[]; text: string }"#
        );
        assert_eq!(type_of(&json!(true)), "unknown");
        assert_eq!(type_of(&json!({"type": "object"})), "{}");
    }

    #[test]
    fn deep_or_huge_schemas_stay_short() {
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        assert_eq!(type_of(&deep), "{ x?: { x?: { x?: { x?: object } } } }");
        let wide: Map<String, Value> = (0..500).map(|i| (format!("field{i}"), json!({"type": "string"}))).collect();
        let text = type_of(&json!({"type": "object", "properties": wide}));
        assert!(text.chars().count() <= MAX_TYPE + 1 && text.ends_with('…'), "{text}");
    }
}
