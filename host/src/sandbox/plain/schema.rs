//! JSON Schemas of WIT types, for a plain component's parameters and
//! results. The JSON form of each type (the same one [`super::value`]
//! reads and writes):
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool` | `true` / `false` |
//! | integers | a number in the type's range (`minimum`/`maximum`) |
//! | `f32`, `f64` | a number; results that are not finite are `"NaN"`, `"Infinity"`, `"-Infinity"` |
//! | `char` | a string of one character |
//! | `string` | a string |
//! | `list<u8>` | a base64 string |
//! | `list<T>` | an array |
//! | `option<T>` | `null` or the value (`{"some": v}` when `T` is an option too); an absent record field or argument is `none` |
//! | `tuple<…>` | an array of fixed length |
//! | `record` | an object with the fields' names |
//! | `variant` | `"case"` for a case without a payload, `{"case": payload}` otherwise |
//! | `enum` | the case's name |
//! | `flags` | an array of the names set |
//! | `result<T, E>` | `{"ok": v}` or `{"err": e}` (`null` when there is no payload) |
//!
//! Resources, futures, streams, maps and error contexts have no JSON form:
//! a function that uses them is refused, naming it and the type.

use super::docs::InterfaceDocs;
use serde_json::{Map, Value, json};
use wasmtime::component::types::Type;

/// How deeply types may nest. Deeper types are refused (no real tool needs
/// them, and every walk of a value follows its type).
pub(crate) const MAX_DEPTH: usize = 64;

/// The most schema nodes the types of one function may expand to: types
/// are shared by reference in a component, and a few levels of tuples of
/// tuples would otherwise describe an exponential schema.
pub(crate) const MAX_NODES: usize = 20_000;

/// Whether a schema describes arguments (lenient reading) or results.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// What a caller sends.
    Input,
    /// What the tool returns.
    Output,
}

/// Builds the schemas of one function's types.
pub(crate) struct SchemaBuilder<'a> {
    direction: Direction,
    docs: Option<&'a InterfaceDocs>,
    nodes: usize,
}

impl<'a> SchemaBuilder<'a> {
    /// A builder for `direction`, describing fields and cases with the docs
    /// of the function's interface when known.
    pub(crate) fn new(direction: Direction, docs: Option<&'a InterfaceDocs>) -> Self {
        SchemaBuilder { direction, docs, nodes: 0 }
    }

    /// The schema of values of type `ty`, or why it has none.
    pub(crate) fn schema(&mut self, ty: &Type) -> Result<Value, String> {
        self.of(ty, 0)
    }

    /// The schema of an object whose properties are `fields` (arguments or
    /// record fields): `option` fields may be left out. Why a field's type
    /// has no schema is put in words by `why(name, type, reason)`.
    pub(crate) fn object<'n>(
        &mut self,
        fields: impl IntoIterator<Item = (&'n str, Type)>,
        depth: usize,
        why: &dyn Fn(&str, &Type, String) -> String,
    ) -> Result<Value, String> {
        let fields: Vec<(&str, Type)> = fields.into_iter().collect();
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let field_docs = self.docs.and_then(|d| d.type_with(&names));
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, ty) in &fields {
            let mut schema = self.of(ty, depth + 1).map_err(|reason| why(name, ty, reason))?;
            if let Some(text) = field_docs.and_then(|d| d.items.get(*name)) {
                describe(&mut schema, text);
            }
            if !matches!(ty, Type::Option(_)) {
                required.push(Value::from(*name));
            }
            properties.insert((*name).to_owned(), schema);
        }
        let mut schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
        if !required.is_empty() {
            schema["required"] = Value::Array(required);
        }
        if let Some(text) = field_docs.and_then(|d| d.docs.as_deref()) {
            describe(&mut schema, text);
        }
        Ok(schema)
    }

    fn of(&mut self, ty: &Type, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("its types nest more than {MAX_DEPTH} levels deep"));
        }
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(format!("its types expand to more than {MAX_NODES} schema nodes"));
        }
        Ok(match ty {
            Type::Bool => json!({"type": "boolean"}),
            Type::S8 => integer(i8::MIN, i8::MAX),
            Type::U8 => integer(u8::MIN, u8::MAX),
            Type::S16 => integer(i16::MIN, i16::MAX),
            Type::U16 => integer(u16::MIN, u16::MAX),
            Type::S32 => integer(i32::MIN, i32::MAX),
            Type::U32 => integer(u32::MIN, u32::MAX),
            Type::S64 => integer(i64::MIN, i64::MAX),
            Type::U64 => integer(u64::MIN, u64::MAX),
            Type::Float32 | Type::Float64 => match self.direction {
                Direction::Input => json!({"type": "number"}),
                Direction::Output => {
                    json!({"anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]})
                }
            },
            Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
            Type::String => json!({"type": "string"}),
            Type::List(list) => match list.ty() {
                Type::U8 => json!({"type": "string", "contentEncoding": "base64"}),
                item => json!({"type": "array", "items": self.of(&item, depth + 1)?}),
            },
            Type::FixedLengthList(list) => {
                let n = list.len();
                json!({"type": "array", "items": self.of(&list.ty(), depth + 1)?, "minItems": n, "maxItems": n})
            }
            Type::Record(record) => {
                let fields: Vec<(String, Type)> = record.fields().map(|f| (f.name.to_owned(), f.ty)).collect();
                self.object(fields.iter().map(|(n, t)| (n.as_str(), t.clone())), depth, &|_, _, reason| reason)?
            }
            Type::Tuple(tuple) => {
                let items = tuple.types().map(|t| self.of(&t, depth + 1)).collect::<Result<Vec<_>, _>>()?;
                let n = items.len();
                json!({"type": "array", "prefixItems": items, "items": false, "minItems": n, "maxItems": n})
            }
            Type::Variant(variant) => {
                let cases: Vec<(String, Option<Type>)> = variant.cases().map(|c| (c.name.to_owned(), c.ty)).collect();
                let names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
                let case_docs = self.docs.and_then(|d| d.type_with(&names));
                let mut one_of = Vec::new();
                for (name, payload) in &cases {
                    let mut schema = match payload {
                        None => json!({"const": name}),
                        Some(ty) => {
                            let inner = self.of(ty, depth + 1)?;
                            json!({"type": "object", "properties": {name.as_str(): inner}, "required": [name], "additionalProperties": false})
                        }
                    };
                    if let Some(text) = case_docs.and_then(|d| d.items.get(name)) {
                        describe(&mut schema, text);
                    }
                    one_of.push(schema);
                }
                let mut schema = json!({"oneOf": one_of});
                if let Some(text) = case_docs.and_then(|d| d.docs.as_deref()) {
                    describe(&mut schema, text);
                }
                schema
            }
            Type::Enum(e) => {
                let names: Vec<&str> = e.names().collect();
                let mut schema = json!({"type": "string", "enum": names});
                self.describe_named(&mut schema, &names);
                schema
            }
            Type::Flags(flags) => {
                let names: Vec<&str> = flags.names().collect();
                let mut schema = json!({"type": "array", "items": {"enum": names}, "uniqueItems": true});
                self.describe_named(&mut schema, &names);
                schema
            }
            Type::Option(option) => {
                let inner_ty = option.ty();
                let inner = self.of(&inner_ty, depth + 1)?;
                let some = if matches!(inner_ty, Type::Option(_)) {
                    json!({"type": "object", "properties": {"some": inner}, "required": ["some"], "additionalProperties": false})
                } else {
                    inner
                };
                json!({"anyOf": [{"type": "null"}, some]})
            }
            Type::Result(result) => {
                let mut side = |name: &str, ty: Option<Type>| -> Result<Value, String> {
                    let inner = match ty {
                        Some(ty) => self.of(&ty, depth + 1)?,
                        None => json!({"type": "null"}),
                    };
                    Ok(
                        json!({"type": "object", "properties": {name: inner}, "required": [name], "additionalProperties": false}),
                    )
                };
                let ok = side("ok", result.ok())?;
                let err = side("err", result.err())?;
                json!({"oneOf": [ok, err]})
            }
            other => return Err(format!("type `{}` has no JSON form", type_name(other))),
        })
    }

    /// Adds the docs of the enum or flags type whose names are `names`.
    fn describe_named(&self, schema: &mut Value, names: &[&str]) {
        let Some(docs) = self.docs.and_then(|d| d.type_with(names)) else { return };
        let mut text = docs.docs.clone().unwrap_or_default();
        for name in names {
            if let Some(item) = docs.items.get(*name) {
                text.push_str(&format!("{}`{name}`: {item}", if text.is_empty() { "" } else { "\n" }));
            }
        }
        if !text.is_empty() {
            describe(schema, &text);
        }
    }
}

fn integer(min: impl Into<Value>, max: impl Into<Value>) -> Value {
    json!({"type": "integer", "minimum": min.into(), "maximum": max.into()})
}

fn describe(schema: &mut Value, text: &str) {
    if let Value::Object(map) = schema {
        map.insert("description".into(), Value::from(text.trim()));
    }
}

/// A type as WIT writes it, for messages and descriptions; deep types are
/// cut short.
pub(crate) fn type_name(ty: &Type) -> String {
    let mut out = String::new();
    write_type(ty, &mut out, 0);
    out
}

fn write_type(ty: &Type, out: &mut String, depth: usize) {
    if depth > 4 || out.len() > 200 {
        out.push('…');
        return;
    }
    let list = |out: &mut String, tys: &mut dyn Iterator<Item = Type>| {
        for (i, t) in tys.enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_type(&t, out, depth + 1);
        }
    };
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::List(l) => {
            out.push_str("list<");
            write_type(&l.ty(), out, depth + 1);
            out.push('>');
        }
        Type::FixedLengthList(l) => {
            out.push_str("list<");
            write_type(&l.ty(), out, depth + 1);
            out.push_str(&format!(", {}>", l.len()));
        }
        Type::Map(m) => {
            out.push_str("map<");
            write_type(&m.key(), out, depth + 1);
            out.push_str(", ");
            write_type(&m.value(), out, depth + 1);
            out.push('>');
        }
        Type::Record(r) => {
            let mut fields: Vec<String> = r.fields().map(|f| f.name.to_owned()).collect();
            if fields.len() > 6 {
                let more = fields.len() - 5;
                fields.truncate(5);
                fields.push(format!("… {more} more"));
            }
            out.push_str(&format!("record {{ {} }}", fields.join(", ")));
        }
        Type::Tuple(t) => {
            out.push_str("tuple<");
            list(out, &mut t.types());
            out.push('>');
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v.cases().map(|c| c.name.to_owned()).collect();
            out.push_str(&format!("variant {{ {} }}", cases.join(", ")));
        }
        Type::Enum(e) => out.push_str(&format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", "))),
        Type::Flags(f) => out.push_str(&format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", "))),
        Type::Option(o) => {
            out.push_str("option<");
            write_type(&o.ty(), out, depth + 1);
            out.push('>');
        }
        Type::Result(r) => {
            out.push_str("result<");
            match r.ok() {
                Some(t) => write_type(&t, out, depth + 1),
                None => out.push('_'),
            }
            if let Some(e) = r.err() {
                out.push_str(", ");
                write_type(&e, out, depth + 1);
            }
            out.push('>');
        }
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(_) => out.push_str("future"),
        Type::Stream(_) => out.push_str("stream"),
        Type::ErrorContext => out.push_str("error-context"),
    }
}
