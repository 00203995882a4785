//! Checks a tool's structured result against its output schema before it
//! reaches the client.
//!
//! A deliberately small JSON Schema subset: the keywords tool schemas use
//! (`type`, `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, `const`, `minimum`, `maximum`, `$ref` into `$defs` or
//! `definitions`, `allOf`, `anyOf`, `oneOf`). Other keywords are not
//! checked; what is checked is checked exactly.

use serde_json::Value;

/// Where and why `value` does not match `schema`, or `None` when it does.
pub fn violation(schema: &Value, value: &Value) -> Option<String> {
    check(schema, schema, value, "", 0).err()
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str, depth: usize) -> Result<(), String> {
    let here = || if at.is_empty() { "/".to_owned() } else { at.to_owned() };
    if depth > 64 {
        return Err(format!("{}: schema nests too deeply", here()));
    }
    let Some(schema) = schema.as_object() else {
        // `true` accepts everything, `false` nothing.
        return if schema == &Value::Bool(false) {
            Err(format!("{}: no value is allowed here", here()))
        } else {
            Ok(())
        };
    };
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let target = reference
            .strip_prefix("#/")
            .and_then(|path| path.split('/').try_fold(root, |node, key| node.get(key)))
            .ok_or_else(|| format!("{}: unresolvable $ref {reference:?}", here()))?;
        check(root, target, value, at, depth + 1)?;
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !allowed.is_empty() && !allowed.iter().any(|t| has_type(value, t)) {
            return Err(format!("{}: expected {}, found {}", here(), allowed.join(" or "), type_name(value)));
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        return Err(format!("{}: {value} is not one of the allowed values", here()));
    }
    if let Some(constant) = schema.get("const")
        && constant != value
    {
        return Err(format!("{}: expected {constant}", here()));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            return Err(format!("{}: {n} is below the minimum {min}", here()));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            return Err(format!("{}: {n} is above the maximum {max}", here()));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(key) = required.as_str()
                && !object.contains_key(key)
            {
                return Err(format!("{}: missing required property `{key}`", here()));
            }
        }
        for (key, item) in object {
            let path = format!("{at}/{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check(root, sub, item, &path, depth + 1)?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => return Err(format!("{}: property `{key}` is not allowed", here())),
                    Some(sub @ Value::Object(_)) => check(root, sub, item, &path, depth + 1)?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{at}/{i}"), depth + 1)?;
        }
    }
    for sub in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check(root, sub, value, at, depth + 1)?;
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(keyword).and_then(Value::as_array) {
            let matching = options.iter().filter(|sub| check(root, sub, value, at, depth + 1).is_ok()).count();
            let ok = if keyword == "oneOf" { matching == 1 } else { matching > 0 };
            if !ok {
                return Err(format!("{}: does not match {keyword}", here()));
            }
        }
    }
    Ok(())
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.as_i64().is_some() || value.as_u64().is_some() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => true,
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        // The shape schemars derives for a struct with a nested type.
        json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint", "minimum": 0},
                "matches": {"type": "array", "items": {"$ref": "#/$defs/Match"}},
                "note": {"type": ["string", "null"]},
                "kind": {"enum": ["a", "b"]}
            },
            "required": ["count", "matches"],
            "additionalProperties": false,
            "$defs": {"Match": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}
        })
    }

    #[test]
    fn accepts_matching_values() {
        let ok = json!({"count": 2, "matches": [{"text": "x"}], "note": null, "kind": "a"});
        assert_eq!(violation(&schema(), &ok), None);
    }

    #[test]
    fn names_where_a_value_goes_wrong() {
        let cases = [
            (json!({"matches": []}), "/: missing required property `count`"),
            (json!({"count": -1, "matches": []}), "/count: -1 is below the minimum 0"),
            (json!({"count": 1.5, "matches": []}), "/count: expected integer, found number"),
            (json!({"count": 1, "matches": [{"text": 3}]}), "/matches/0/text: expected string, found number"),
            (json!({"count": 1, "matches": [], "extra": true}), "/: property `extra` is not allowed"),
            (json!({"count": 1, "matches": [], "kind": "c"}), "/kind: \"c\" is not one of the allowed values"),
            (json!([1]), "/: expected object, found array"),
        ];
        for (value, expected) in cases {
            assert_eq!(violation(&schema(), &value).as_deref(), Some(expected), "{value}");
        }
    }

    #[test]
    fn composition_keywords() {
        let either = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(violation(&either, &json!(3)), None);
        assert!(violation(&either, &json!(true)).is_some());
        let exactly_one = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(violation(&exactly_one, &json!(3)).is_some(), "3 matches both");
        assert!(violation(&json!({"$ref": "#/nowhere"}), &json!(1)).unwrap().contains("unresolvable"));
    }
}
