//! The fixture tools the MCP conformance suite
//! (`@modelcontextprotocol/conformance`) calls by name, as a real toolmesh
//! component. `tool serve --bare-names conformance/fixtures` exposes them
//! under the exact names the suite expects.
use serde_json::{Map, Value, json};
use toolmesh_guest::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// A 1x1 red PNG.
const RED_PIXEL: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0xc9, 0xfe, 0x92, 0xef,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn red_pixel() -> Image {
    Image { data: RED_PIXEL.to_vec(), mime_type: "image/png".into() }
}

fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": {"street": {"type": "string"}, "city": {"type": "string"}}
            }
        },
        "properties": {
            "name": {"type": "string"},
            "address": {"$ref": "#/$defs/address"},
            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
            "phone": {"type": "string"},
            "email": {"type": "string"}
        },
        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
        "then": {"required": ["phone"]},
        "else": {"required": ["email"]},
        "additionalProperties": false
    })
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("test_simple_text", "Returns a simple text response.", |_: NoArgs| {
            Ok(String::from("This is a simple text response for testing."))
        }),
        Tool::new("test_image_content", "Returns a 1x1 red PNG.", |_: NoArgs| Ok(red_pixel())),
        Tool::new("test_multiple_content_types", "Returns text and an image.", |_: NoArgs| {
            Ok(Output::new().text("Multiple content types test:").image(red_pixel()))
        }),
        Tool::new("test_error_handling", "Always fails.", |_: NoArgs| -> Result<String, ToolError> {
            Err(ToolError::failed("This tool intentionally returns an error for testing"))
        }),
        Tool::new("test_tool_with_progress", "Reports progress 0, 50 and 100 of 100.", |_: NoArgs| {
            for (i, done) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                toolmesh_guest::host::progress(done, Some(100.0), None);
            }
            Ok(String::from("Progress test completed"))
        }),
        Tool::new("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", |_: Map<String, Value>| {
            Ok(String::from("ok"))
        })
        .input_schema_json(json_schema_2020_12()),
    ]
}

toolmesh_guest::export_tools!(tools);
