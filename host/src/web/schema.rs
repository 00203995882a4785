//! A tool's JSON schemas as people read them (one row per field) and as a
//! form asks for them (one input per top-level argument). Pure; bounded in
//! depth and rows, since schemas come from publishers.

use serde_json::Value;

/// Deepest nesting shown.
const MAX_DEPTH: usize = 4;
/// Most rows shown for one schema.
const MAX_ROWS: usize = 200;

/// One field of a schema, for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Its path (`options.limit`, `items[]`).
    pub path: String,
    /// Its type in words (`string`, `integer ≥ 1`, `one of "a", "b"`).
    pub kind: String,
    /// Whether its parent requires it.
    pub required: bool,
    /// The schema's description.
    pub description: String,
    /// How deep it sits (0 for a top-level property).
    pub depth: usize,
}

/// How a form asks for one argument.
#[derive(Debug, Clone, PartialEq)]
pub enum InputKind {
    /// One line of text.
    Text,
    /// Several lines of text.
    LongText,
    /// A number; `integer` when only whole numbers fit.
    Number {
        /// Whether only whole numbers fit.
        integer: bool,
    },
    /// A checkbox.
    Boolean,
    /// A choice among fixed values (each as JSON text).
    Choice(Vec<String>),
    /// JSON typed by hand (objects, arrays, anything else).
    Json,
}

/// One argument of a tool's form.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    /// The argument's name.
    pub name: String,
    /// How it is asked for.
    pub kind: InputKind,
    /// Whether the tool requires it.
    pub required: bool,
    /// The schema's description.
    pub description: String,
    /// The schema's default, as text for the input (JSON for [`InputKind::Json`]).
    pub default: String,
}

/// The fields of `schema`, depth first, with `$ref`s into its `$defs` resolved.
pub fn fields(schema: &Value) -> Vec<Field> {
    let mut out = Vec::new();
    walk(schema, schema, "", 0, &mut out);
    out
}

fn walk(root: &Value, schema: &Value, prefix: &str, depth: usize, out: &mut Vec<Field>) {
    let schema = resolve(root, schema);
    if depth >= MAX_DEPTH {
        return;
    }
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, property) in properties {
            if out.len() >= MAX_ROWS {
                return;
            }
            let property = resolve(root, property);
            let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
            out.push(Field {
                kind: kind(root, property, 0),
                required: required.contains(&name.as_str()),
                description: text(&property["description"]),
                path: path.clone(),
                depth,
            });
            walk(root, property, &path, depth + 1, out);
        }
    }
    let items = resolve(root, &schema["items"]);
    if items["properties"].is_object() {
        walk(root, items, &format!("{prefix}[]"), depth + 1, out);
    }
}

/// The schema `schema` points to when it is a local `$ref`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let mut schema = schema;
    for _ in 0..8 {
        let Some(pointer) = schema["$ref"].as_str().and_then(|r| r.strip_prefix('#')) else { break };
        match root.pointer(pointer) {
            Some(target) => schema = target,
            None => break,
        }
    }
    schema
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The type names of `schema` (`type` as a string or a list).
fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `schema`'s type in words, with the constraints a caller must meet;
/// `depth` counts the `anyOf`/`oneOf` it is inside.
fn kind(root: &Value, schema: &Value, depth: usize) -> String {
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().take(20).map(Value::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    if let Some(value) = schema.get("const") {
        return format!("always {value}");
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema[key].as_array() {
            if depth >= 2 {
                return "one of several shapes".to_owned();
            }
            let options: Vec<String> =
                options.iter().take(8).map(|o| kind(root, resolve(root, o), depth + 1)).collect();
            return options.join(" or ");
        }
    }
    let mut words = match types(schema).as_slice() {
        [] => "any JSON value".to_owned(),
        ["array"] => {
            let items = resolve(root, &schema["items"]);
            match types(items).as_slice() {
                [] => "list".to_owned(),
                [one] => format!("list of {one}s"),
                _ => "list".to_owned(),
            }
        }
        list => list.join(" or "),
    };
    let bound = |key: &str, sign: &str, words: &mut String| {
        if let Some(n) = schema.get(key).filter(|v| v.is_number()) {
            words.push_str(&format!(", {sign} {n}"));
        }
    };
    bound("minimum", "≥", &mut words);
    bound("exclusiveMinimum", ">", &mut words);
    bound("maximum", "≤", &mut words);
    bound("exclusiveMaximum", "<", &mut words);
    bound("minLength", "length ≥", &mut words);
    bound("maxLength", "length ≤", &mut words);
    bound("minItems", "items ≥", &mut words);
    bound("maxItems", "items ≤", &mut words);
    if let Some(format) = schema["format"].as_str() {
        words.push_str(&format!(" ({format})"));
    }
    if let Some(default) = schema.get("default") {
        words.push_str(&format!(", default {default}"));
    }
    words
}

/// The form that asks for the arguments of `schema`: one input per
/// top-level property.
pub fn form(schema: &Value) -> Vec<FormField> {
    let root = schema;
    let schema = resolve(root, schema);
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = schema["properties"].as_object() else { return Vec::new() };
    // What must be filled in comes first.
    let mut properties: Vec<(&String, &Value)> = properties.iter().collect();
    properties.sort_by_key(|(name, _)| !required.contains(&name.as_str()));
    properties
        .into_iter()
        .take(MAX_ROWS)
        .map(|(name, property)| {
            let property = resolve(root, property);
            let kind = input_kind(name, property);
            let default = match (&kind, property.get("default")) {
                (_, None) => String::new(),
                (InputKind::Text | InputKind::LongText, Some(Value::String(s))) => s.clone(),
                (InputKind::Json, Some(value)) => serde_json::to_string_pretty(value).unwrap_or_default(),
                (_, Some(value)) => value.to_string(),
            };
            FormField {
                name: name.clone(),
                required: required.contains(&name.as_str()),
                description: text(&property["description"]),
                kind,
                default,
            }
        })
        .collect()
}

/// How to ask for property `name` of schema `property`.
fn input_kind(name: &str, property: &Value) -> InputKind {
    if let Some(values) = property["enum"].as_array() {
        return InputKind::Choice(values.iter().map(Value::to_string).collect());
    }
    // A nullable type (`["string", "null"]`) is asked for as its other type.
    let types: Vec<&str> = types(property).into_iter().filter(|t| *t != "null").collect();
    match types.as_slice() {
        ["string"] => {
            let long = property["maxLength"].as_u64().is_none_or(|max| max > 200)
                && ["code", "text", "content", "body", "input", "markdown", "source", "data", "csv", "html"]
                    .iter()
                    .any(|word| name.to_lowercase().contains(word));
            if long { InputKind::LongText } else { InputKind::Text }
        }
        ["integer"] => InputKind::Number { integer: true },
        ["number"] => InputKind::Number { integer: false },
        ["boolean"] => InputKind::Boolean,
        _ => InputKind::Json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["text"],
            "properties": {
                "text": {"type": "string", "description": "What to count"},
                "limit": {"type": ["integer", "null"], "minimum": 1, "default": 10},
                "mode": {"enum": ["words", "lines"]},
                "strict": {"type": "boolean"},
                "options": {"$ref": "#/$defs/Options"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "$defs": {"Options": {"type": "object", "properties": {"case": {"type": "string"}}}}
        })
    }

    #[test]
    fn fields_read_in_words_with_refs_resolved() {
        let rows = fields(&schema());
        let row = |path: &str| rows.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("{path}: {rows:?}"));
        assert!(row("text").required && row("text").description == "What to count");
        assert_eq!(row("limit").kind, "integer or null, ≥ 1, default 10");
        assert_eq!(row("mode").kind, r#"one of "words", "lines""#);
        assert_eq!(row("tags").kind, "list of strings");
        assert_eq!((row("options.case").depth, row("options.case").kind.as_str()), (1, "string"));
    }

    #[test]
    fn forms_pick_an_input_per_argument() {
        let form = form(&schema());
        assert_eq!(form[0].name, "text", "required arguments come first");
        let field = |name: &str| form.iter().find(|f| f.name == name).unwrap();
        assert_eq!(field("text").kind, InputKind::LongText);
        assert!(field("text").required);
        assert_eq!(field("limit").kind, InputKind::Number { integer: true });
        assert_eq!(field("limit").default, "10");
        assert_eq!(field("mode").kind, InputKind::Choice(vec![r#""words""#.into(), r#""lines""#.into()]));
        assert_eq!(field("strict").kind, InputKind::Boolean);
        assert_eq!(field("options").kind, InputKind::Json);
        assert_eq!(field("tags").kind, InputKind::Json);
    }

    #[test]
    fn hostile_schemas_stay_bounded() {
        // A reference cycle and a very deep schema end quietly.
        let cycle = json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/A"}}});
        assert!(fields(&cycle).is_empty());
        let itself = json!({"type": "object", "items": {"$ref": "#"}, "properties": {"x": {"anyOf": [{"$ref": "#/properties/x"}]}}});
        assert!(fields(&itself).len() <= MAX_ROWS);
        let mut deep = json!({"type": "string"});
        for _ in 0..100 {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        assert_eq!(fields(&deep).len(), MAX_DEPTH);
        let wide: serde_json::Map<String, Value> = (0..1000).map(|i| (format!("p{i}"), json!({}))).collect();
        assert_eq!(fields(&json!({"properties": wide})).len(), MAX_ROWS);
    }
}
