//! A tool's published JSON Schemas, enforced: arguments are checked
//! against the input schema before the call, structured results against
//! the output schema after it.
//!
//! The checks use a complete validator (the `jsonschema` crate: draft
//! 2020-12 unless the schema's `$schema` names another; `format` is an
//! annotation, as 2020-12 says; no remote `$ref`s are fetched), so what a
//! tool publishes is exactly what the gateway enforces.

use jsonschema::Validator;
use serde_json::Value;

/// The compiled schemas of one tool.
pub struct ToolSchemas {
    input: Validator,
    output: Option<Validator>,
}

impl std::fmt::Debug for ToolSchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSchemas").field("output", &self.output.is_some()).finish_non_exhaustive()
    }
}

/// Schemas are compiled from a tool's descriptor, and catalogs compare
/// descriptors; two compiled schemas never decide a comparison.
impl PartialEq for ToolSchemas {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl ToolSchemas {
    /// Compiles a tool's input schema and, when it has one, its output
    /// schema; says which one is unusable and why.
    pub fn compile(input: &Value, output: Option<&Value>) -> Result<Self, String> {
        let build = |which: &str, schema: &Value| {
            jsonschema::options()
                .build(schema)
                .map_err(|e| format!("its {which} schema is not a usable JSON Schema: {e}"))
        };
        Ok(ToolSchemas { input: build("input", input)?, output: output.map(|s| build("output", s)).transpose()? })
    }

    /// Where and why `arguments` break the input schema, if they do.
    pub fn check_arguments(&self, arguments: &Value) -> Result<(), String> {
        first_violation(&self.input, arguments)
    }

    /// Checks a result's structured content against the output schema: a
    /// tool that has one must return structured content, and it must match.
    pub fn check_result(&self, structured: Option<&Value>) -> Result<(), String> {
        match (&self.output, structured) {
            (Some(schema), Some(structured)) => first_violation(schema, structured).map_err(|problem| {
                format!("tool returned structured content that does not match its output schema: {problem}")
            }),
            (Some(_), None) => Err("tool declares an output schema but returned no structured content".into()),
            (None, _) => Ok(()),
        }
    }
}

/// The first error of `value` against `validator`, as `pointer: reason`.
fn first_violation(validator: &Validator, value: &Value) -> Result<(), String> {
    // The quick check first: most values are valid.
    if validator.is_valid(value) {
        return Ok(());
    }
    match validator.iter_errors(value).next() {
        None => Ok(()),
        Some(error) => {
            let path = error.instance_path().to_string();
            let path = if path.is_empty() { "/".to_owned() } else { path };
            Err(format!("{path}: {error}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        // The shape schemars derives for a struct with a nested type.
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint", "minimum": 0},
                "matches": {"type": "array", "items": {"$ref": "#/$defs/Match"}},
                "note": {"type": ["string", "null"]},
                "kind": {"enum": ["a", "b"]},
                "tag": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}
            },
            "required": ["count", "matches"],
            "additionalProperties": false,
            "$defs": {"Match": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}
        })
    }

    fn input_only(schema: Value) -> ToolSchemas {
        ToolSchemas::compile(&schema, None).unwrap()
    }

    #[test]
    fn accepts_matching_values() {
        let ok = json!({"count": 2, "matches": [{"text": "x"}], "note": null, "kind": "a", "tag": "abc"});
        assert_eq!(input_only(schema()).check_arguments(&ok), Ok(()));
    }

    #[test]
    fn names_where_a_value_goes_wrong() {
        let schemas = input_only(schema());
        let cases = [
            (json!({"matches": []}), "/: \"count\" is a required property"),
            (json!({"count": -1, "matches": []}), "/count: -1 is less than the minimum of 0"),
            (json!({"count": 1.5, "matches": []}), "/count: 1.5 is not of type \"integer\""),
            (json!({"count": 1, "matches": [{"text": 3}]}), "/matches/0/text: 3 is not of type \"string\""),
            (json!({"count": 1, "matches": [], "tag": "ABC"}), "/tag: \"ABC\" does not match \"^[a-z]+$\""),
            (json!({"count": 1, "matches": [], "tag": "abcdef"}), "/tag: \"abcdef\" is longer than 5 characters"),
            (json!([1]), "/: [1] is not of type \"object\""),
        ];
        for (value, expected) in cases {
            assert_eq!(schemas.check_arguments(&value).unwrap_err(), expected, "{value}");
        }
        let extra = schemas.check_arguments(&json!({"count": 1, "matches": [], "extra": true})).unwrap_err();
        assert!(extra.starts_with("/: Additional properties are not allowed"), "{extra}");
    }

    #[test]
    fn results_must_match_a_declared_output_schema() {
        let output = json!({"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]});
        let schemas = ToolSchemas::compile(&json!({"type": "object"}), Some(&output)).unwrap();
        assert_eq!(schemas.check_result(Some(&json!({"count": 2}))), Ok(()));
        let wrong = schemas.check_result(Some(&json!({"count": "many"}))).unwrap_err();
        assert_eq!(
            wrong,
            "tool returned structured content that does not match its output schema: /count: \"many\" is not of type \"integer\""
        );
        assert!(schemas.check_result(None).unwrap_err().contains("no structured content"));
        let free = input_only(json!({"type": "object"}));
        assert_eq!(free.check_result(None), Ok(()), "no output schema, nothing to check");
    }

    #[test]
    fn unusable_schemas_are_refused_and_remote_refs_not_fetched() {
        let bad = ToolSchemas::compile(&json!({"type": 12}), None).unwrap_err();
        assert!(bad.contains("input schema is not a usable JSON Schema"), "{bad}");
        let remote = json!({"$ref": "http://127.0.0.1:9/schema.json"});
        assert!(ToolSchemas::compile(&json!({"type": "object"}), Some(&remote)).is_err());
    }
}
