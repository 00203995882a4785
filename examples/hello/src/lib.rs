//! The smallest useful toolmesh tool; copy it to start a new one.
use toolmesh_guest::prelude::*;

/// Arguments of `greet`.
#[derive(Deserialize, JsonSchema)]
struct Greet {
    /// Who to greet.
    name: String,
}

fn greet(args: Greet) -> Result<String, ToolError> {
    Ok(format!("Hello, {}!", args.name))
}

fn tools() -> Vec<Tool> {
    vec![Tool::new("greet", "Greets someone by name.", greet).read_only().idempotent()]
}

toolmesh_guest::export_tools!(tools);

#[cfg(test)]
mod tests {
    #[test]
    fn greets_by_name() {
        let out = super::tools()[0].call(r#"{"name":"Ada"}"#).unwrap();
        assert_eq!(out, vec![toolmesh_guest::Content::Text("Hello, Ada!".into())]);
    }
}
