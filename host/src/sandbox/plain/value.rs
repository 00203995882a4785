//! Component values from and to JSON, in the form [`super::schema`]
//! describes. Reading never panics, whatever the JSON: every mismatch is an
//! error naming the argument's path (`value.shape.circle`) and what was
//! expected; and the values read may not take more host memory than the
//! call's memory limit.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// Reads component values from JSON, charging each value against a budget
/// of host memory.
pub(crate) struct Reader {
    budget: usize,
}

impl Reader {
    /// A reader whose values may take at most `bytes` of host memory.
    pub(crate) fn new(bytes: u64) -> Self {
        Reader { budget: usize::try_from(bytes).unwrap_or(usize::MAX) }
    }

    fn charge(&mut self, path: &str, values: usize) -> Result<(), String> {
        let cost = values.saturating_mul(size_of::<Val>());
        self.budget = self.budget.checked_sub(cost).ok_or_else(|| {
            format!("`{path}` is too large: the arguments would take more memory than the call may use")
        })?;
        Ok(())
    }

    /// The value of type `ty` that `json` holds, at `path`.
    pub(crate) fn read(&mut self, ty: &Type, json: &Value, path: &str) -> Result<Val, String> {
        self.charge(path, 1)?;
        let expected = |what: &str| Err(format!("`{path}`: expected {what}, got {}", kind(json)));
        Ok(match ty {
            Type::Bool => match json {
                Value::Bool(b) => Val::Bool(*b),
                _ => return expected("true or false"),
            },
            Type::S8 => Val::S8(int(json, path)?),
            Type::U8 => Val::U8(int(json, path)?),
            Type::S16 => Val::S16(int(json, path)?),
            Type::U16 => Val::U16(int(json, path)?),
            Type::S32 => Val::S32(int(json, path)?),
            Type::U32 => Val::U32(int(json, path)?),
            Type::S64 => Val::S64(int(json, path)?),
            Type::U64 => Val::U64(int(json, path)?),
            Type::Float32 => {
                let x = float(json, path)?;
                let single = x as f32;
                if x.is_finite() && !single.is_finite() {
                    return Err(format!("`{path}`: {x} is out of range for f32"));
                }
                Val::Float32(single)
            }
            Type::Float64 => Val::Float64(float(json, path)?),
            Type::Char => match json.as_str().map(|s| {
                let mut chars = s.chars();
                (chars.next(), chars.next())
            }) {
                Some((Some(c), None)) => Val::Char(c),
                _ => return expected("a string of one character"),
            },
            Type::String => match json {
                Value::String(s) => {
                    self.charge(path, s.len() / size_of::<Val>())?;
                    Val::String(s.clone())
                }
                _ => return expected("a string"),
            },
            Type::List(list) => match (list.ty(), json) {
                (Type::U8, Value::String(text)) => {
                    self.charge(path, text.len() / 4 * 3)?;
                    let bytes = BASE64
                        .decode(text)
                        .map_err(|e| format!("`{path}`: expected base64 bytes, but it is not base64: {e}"))?;
                    Val::List(bytes.into_iter().map(Val::U8).collect())
                }
                (Type::U8, _) => return expected("a base64 string"),
                (item, Value::Array(items)) => Val::List(self.items(&item, items, path)?),
                _ => return expected("an array"),
            },
            Type::FixedLengthList(list) => match json {
                Value::Array(items) if items.len() == list.len() as usize => {
                    Val::FixedLengthList(self.items(&list.ty(), items, path)?)
                }
                _ => return expected(&format!("an array of {} items", list.len())),
            },
            Type::Record(record) => {
                let Value::Object(object) = json else { return expected("an object") };
                let fields: Vec<(String, Type)> = record.fields().map(|f| (f.name.to_owned(), f.ty)).collect();
                Val::Record(self.fields(&fields, object, path)?)
            }
            Type::Tuple(tuple) => {
                let types: Vec<Type> = tuple.types().collect();
                match json {
                    Value::Array(items) if items.len() == types.len() => Val::Tuple(
                        types
                            .iter()
                            .zip(items)
                            .enumerate()
                            .map(|(i, (ty, item))| self.read(ty, item, &format!("{path}[{i}]")))
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => return expected(&format!("an array of {} items", types.len())),
                }
            }
            Type::Variant(variant) => {
                let (name, payload) = tagged(json, path, "a case name or an object with one case")?;
                let Some(case) = variant.cases().find(|c| c.name == name) else {
                    let names: Vec<&str> = variant.cases().map(|c| c.name).collect();
                    return Err(format!("`{path}`: no case `{name}` (the cases are {})", names.join(", ")));
                };
                let payload = self.payload(case.ty.as_ref(), payload, &format!("{path}.{name}"))?;
                Val::Variant(name.to_owned(), payload)
            }
            Type::Enum(e) => match json.as_str() {
                Some(name) if e.names().any(|n| n == name) => Val::Enum(name.to_owned()),
                _ => return expected(&format!("one of {}", e.names().collect::<Vec<_>>().join(", "))),
            },
            Type::Flags(flags) => {
                let Value::Array(items) = json else { return expected("an array of flag names") };
                self.charge(path, items.len())?;
                let mut set = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(name) if flags.names().any(|n| n == name) => {
                            if !set.iter().any(|s| s == name) {
                                set.push(name.to_owned());
                            }
                        }
                        _ => {
                            let names: Vec<&str> = flags.names().collect();
                            return Err(format!(
                                "`{path}`: {} is not a flag (the flags are {})",
                                item,
                                names.join(", ")
                            ));
                        }
                    }
                }
                Val::Flags(set)
            }
            Type::Option(option) => {
                let inner = option.ty();
                match json {
                    Value::Null => Val::Option(None),
                    _ if matches!(inner, Type::Option(_)) => {
                        match json.as_object().and_then(|o| (o.len() == 1).then(|| o.get("some")).flatten()) {
                            Some(value) => {
                                Val::Option(Some(Box::new(self.read(&inner, value, &format!("{path}.some"))?)))
                            }
                            None => return expected("null or {\"some\": …}"),
                        }
                    }
                    _ => Val::Option(Some(Box::new(self.read(&inner, json, path)?))),
                }
            }
            Type::Result(result) => {
                let (name, payload) = tagged(json, path, "{\"ok\": …} or {\"err\": …}")?;
                let inner_path = format!("{path}.{name}");
                match name {
                    "ok" => Val::Result(Ok(self.payload(result.ok().as_ref(), payload, &inner_path)?)),
                    "err" => Val::Result(Err(self.payload(result.err().as_ref(), payload, &inner_path)?)),
                    _ => return expected("{\"ok\": …} or {\"err\": …}"),
                }
            }
            other => {
                return Err(format!("`{path}`: type {} cannot be read from JSON", super::schema::type_name(other)));
            }
        })
    }

    /// Reads the named `fields` from `object` (arguments or a record):
    /// options may be absent, unknown names are refused.
    pub(crate) fn fields(
        &mut self,
        fields: &[(String, Type)],
        object: &Map<String, Value>,
        path: &str,
    ) -> Result<Vec<(String, Val)>, String> {
        if let Some(unknown) = object.keys().find(|k| !fields.iter().any(|(name, _)| name == *k)) {
            let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let whose = if path.is_empty() { "the arguments".to_owned() } else { format!("`{path}`") };
            return Err(format!("{whose}: unknown field `{unknown}` (expected {})", names.join(", ")));
        }
        fields
            .iter()
            .map(|(name, ty)| {
                let field_path = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
                let value = match (object.get(name), ty) {
                    (Some(value), _) => self.read(ty, value, &field_path)?,
                    (None, Type::Option(_)) => Val::Option(None),
                    (None, _) => return Err(format!("`{field_path}` is missing")),
                };
                Ok((name.clone(), value))
            })
            .collect()
    }

    fn items(&mut self, ty: &Type, items: &[Value], path: &str) -> Result<Vec<Val>, String> {
        self.charge(path, items.len())?;
        items.iter().enumerate().map(|(i, item)| self.read(ty, item, &format!("{path}[{i}]"))).collect()
    }

    fn payload(&mut self, ty: Option<&Type>, json: Option<&Value>, path: &str) -> Result<Option<Box<Val>>, String> {
        match (ty, json) {
            (None, None | Some(Value::Null)) => Ok(None),
            (None, Some(other)) => Err(format!("`{path}` takes no value, got {}", kind(other))),
            (Some(ty), Some(value)) => Ok(Some(Box::new(self.read(ty, value, path)?))),
            (Some(_), None) => Err(format!("`{path}` needs a value")),
        }
    }
}

/// A case name with its payload: `"name"` or `{"name": payload}`.
fn tagged<'j>(json: &'j Value, path: &str, what: &str) -> Result<(&'j str, Option<&'j Value>), String> {
    match json {
        Value::String(name) => Ok((name, None)),
        Value::Object(object) if object.len() == 1 => {
            let (name, value) = object.iter().next().expect("one entry");
            Ok((name, Some(value)))
        }
        other => Err(format!("`{path}`: expected {what}, got {}", kind(other))),
    }
}

fn int<T: TryFrom<i64> + TryFrom<u64> + Bounds>(json: &Value, path: &str) -> Result<T, String> {
    let out_of_range = || format!("`{path}`: expected an integer from {} to {}, got {json}", T::MIN, T::MAX);
    let Value::Number(n) = json else {
        return Err(format!("`{path}`: expected an integer, got {}", kind(json)));
    };
    if let Some(i) = n.as_i64() {
        return T::try_from(i).map_err(|_| out_of_range());
    }
    if let Some(u) = n.as_u64() {
        return T::try_from(u).map_err(|_| out_of_range());
    }
    // An integral float such as `3.0` is an integer to JSON Schema.
    match n.as_f64() {
        Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => T::try_from(x as i64).map_err(|_| out_of_range()),
        _ => Err(format!("`{path}`: expected an integer, got {json}")),
    }
}

/// The range of an integer type, for messages.
trait Bounds {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! bounds {
    ($($t:ty),*) => {$(impl Bounds for $t { const MIN: i128 = <$t>::MIN as i128; const MAX: i128 = <$t>::MAX as i128; })*};
}
bounds!(i8, u8, i16, u16, i32, u32, i64, u64);

fn float(json: &Value, path: &str) -> Result<f64, String> {
    match json {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("`{path}`: {n} is not a number")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => Err(format!("`{path}`: expected a number, got {}", kind(other))),
    }
}

/// What kind of JSON value `json` is, for messages.
fn kind(json: &Value) -> String {
    match json {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(a) => format!("an array of {} items", a.len()),
        Value::Object(_) => "an object".into(),
    }
}

/// The JSON form of `val`, a value of type `ty`.
pub(crate) fn write(ty: &Type, val: &Val) -> Value {
    match (ty, val) {
        (_, Val::Bool(b)) => Value::Bool(*b),
        (_, Val::S8(x)) => Value::from(*x),
        (_, Val::U8(x)) => Value::from(*x),
        (_, Val::S16(x)) => Value::from(*x),
        (_, Val::U16(x)) => Value::from(*x),
        (_, Val::S32(x)) => Value::from(*x),
        (_, Val::U32(x)) => Value::from(*x),
        (_, Val::S64(x)) => Value::from(*x),
        (_, Val::U64(x)) => Value::from(*x),
        (_, Val::Float32(x)) => write_float(f64::from(*x)),
        (_, Val::Float64(x)) => write_float(*x),
        (_, Val::Char(c)) => Value::String(c.to_string()),
        (_, Val::String(s)) => Value::String(s.clone()),
        (Type::List(list), Val::List(items)) => match list.ty() {
            Type::U8 => Value::String(
                BASE64.encode(items.iter().map(|v| if let Val::U8(b) = v { *b } else { 0 }).collect::<Vec<u8>>()),
            ),
            item => Value::Array(items.iter().map(|v| write(&item, v)).collect()),
        },
        (Type::FixedLengthList(list), Val::FixedLengthList(items)) => {
            Value::Array(items.iter().map(|v| write(&list.ty(), v)).collect())
        }
        (Type::Record(record), Val::Record(fields)) => Value::Object(
            record.fields().zip(fields).map(|(field, (name, value))| (name.clone(), write(&field.ty, value))).collect(),
        ),
        (Type::Tuple(tuple), Val::Tuple(items)) => {
            Value::Array(tuple.types().zip(items).map(|(ty, v)| write(&ty, v)).collect())
        }
        (Type::Variant(variant), Val::Variant(name, payload)) => {
            match (variant.cases().find(|c| c.name == name).and_then(|c| c.ty), payload) {
                (Some(ty), Some(value)) => Value::Object(Map::from_iter([(name.clone(), write(&ty, value))])),
                _ => Value::String(name.clone()),
            }
        }
        (_, Val::Enum(name)) => Value::String(name.clone()),
        (_, Val::Flags(names)) => Value::Array(names.iter().cloned().map(Value::String).collect()),
        (Type::Option(option), Val::Option(value)) => match value {
            None => Value::Null,
            Some(inner) if matches!(option.ty(), Type::Option(_)) => {
                Value::Object(Map::from_iter([("some".to_owned(), write(&option.ty(), inner))]))
            }
            Some(inner) => write(&option.ty(), inner),
        },
        (Type::Result(result), Val::Result(value)) => {
            let (name, ty, payload) = match value {
                Ok(payload) => ("ok", result.ok(), payload),
                Err(payload) => ("err", result.err(), payload),
            };
            let inner = match (ty, payload) {
                (Some(ty), Some(value)) => write(&ty, value),
                _ => Value::Null,
            };
            Value::Object(Map::from_iter([(name.to_owned(), inner)]))
        }
        // A value that does not match its type cannot come out of wasmtime;
        // say so rather than guess.
        _ => Value::String(format!("<unrepresentable {}>", super::schema::type_name(ty))),
    }
}

fn write_float(x: f64) -> Value {
    match serde_json::Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::from("NaN"),
        None if x > 0.0 => Value::from("Infinity"),
        None => Value::from("-Infinity"),
    }
}
