//! {{name}}: a toolmesh tool in Rust. Each `Tool` is one MCP tool: its
//! argument struct is its input schema (doc comments become descriptions).
//! Build it with `tool build`.

use toolmesh_guest::prelude::*;

/// Arguments of `convert`.
#[derive(Deserialize, JsonSchema)]
struct Convert {
    /// The amount to convert.
    value: f64,
    /// Its unit: m, km, mi, ft, kg, lb, c or f.
    from: String,
    /// The unit to convert to, of the same kind.
    to: String,
}

/// A unit's kind and its value in the kind's base unit (Celsius converts apart).
fn unit(name: &str) -> Option<(&'static str, f64)> {
    Some(match name {
        "m" => ("length", 1.0),
        "km" => ("length", 1000.0),
        "mi" => ("length", 1609.344),
        "ft" => ("length", 0.3048),
        "kg" => ("mass", 1.0),
        "lb" => ("mass", 0.453_592_37),
        "c" | "f" => ("temperature", 1.0),
        _ => return None,
    })
}

fn convert(args: Convert) -> Result<String, ToolError> {
    let unknown = |u: &str| ToolError::invalid_arguments(format!("unknown unit {u:?}"));
    let (from_kind, from_scale) = unit(&args.from).ok_or_else(|| unknown(&args.from))?;
    let (to_kind, to_scale) = unit(&args.to).ok_or_else(|| unknown(&args.to))?;
    if from_kind != to_kind {
        return Err(ToolError::failed(format!("cannot convert {from_kind} to {to_kind}")));
    }
    let result = match (args.from.as_str(), args.to.as_str()) {
        ("c", "f") => args.value * 9.0 / 5.0 + 32.0,
        ("f", "c") => (args.value - 32.0) * 5.0 / 9.0,
        _ => args.value * from_scale / to_scale,
    };
    Ok(format!("{result} {}", args.to))
}

fn tools() -> Vec<Tool> {
    vec![Tool::new("convert", "Converts an amount between units of length, mass or temperature.", convert)
        .read_only()
        .idempotent()]
}

toolmesh_guest::export_tools!(tools);
