//! The fixture tools the MCP conformance suite
//! (`@modelcontextprotocol/conformance`) calls by name, as a real toolmesh
//! component. `tool serve --bare-names conformance/fixtures` exposes them
//! under the exact names the suite expects.
use serde_json::{Map, Value, json};
use toolmesh_guest::prelude::*;
use toolmesh_guest::{TaskSupport, ask};

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

/// A tenth of a second of silence: 8 kHz, 8-bit mono PCM in a WAV file.
fn silence_wav() -> Audio {
    let samples = 800u32;
    let mut data = Vec::new();
    data.extend_from_slice(b"RIFF");
    data.extend_from_slice(&(36 + samples).to_le_bytes());
    data.extend_from_slice(b"WAVEfmt ");
    data.extend_from_slice(&16u32.to_le_bytes());
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&8000u32.to_le_bytes()); // samples per second
    data.extend_from_slice(&8000u32.to_le_bytes()); // bytes per second
    data.extend_from_slice(&1u16.to_le_bytes()); // block align
    data.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    data.extend_from_slice(b"data");
    data.extend_from_slice(&samples.to_le_bytes());
    data.extend(std::iter::repeat_n(0x80u8, samples as usize));
    Audio { data, mime_type: "audio/wav".into() }
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

/// A form with one required string field.
fn form(field: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]})
}

/// The value of `field` of an accepted form, or what the user did instead.
fn filled(answer: ask::Elicited, field: &str) -> String {
    match answer {
        ask::Elicited::Accepted(values) => values.get(field).and_then(Value::as_str).unwrap_or("").to_owned(),
        ask::Elicited::Declined => "(declined)".into(),
        ask::Elicited::Cancelled => "(cancelled)".into(),
    }
}

/// The tools that ask their client before answering (SEP-2322).
fn asking_tools() -> Vec<Tool> {
    vec![
        Tool::new("test_input_required_result_elicitation", "Asks the user's name.", |_: NoArgs| {
            let name = filled(ask::elicit("user_name", "What is your name?", form("name"))?, "name");
            Ok(format!("Hello, {name}!"))
        }),
        Tool::new("test_input_required_result_sampling", "Asks the client's model a question.", |_: NoArgs| {
            Ok(ask::sample("capital_question", "What is the capital of France?", 100)?)
        }),
        Tool::new("test_input_required_result_list_roots", "Asks the client's roots.", |_: NoArgs| {
            let roots: Vec<String> = ask::roots("client_roots")?.into_iter().map(|r| r.uri).collect();
            Ok(format!("Roots: {}", roots.join(", ")))
        }),
        Tool::new("test_input_required_result_request_state", "Asks for a confirmation.", |_: NoArgs| {
            let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
            let confirmed = match ask::elicit("confirm", "Please confirm", schema)? {
                ask::Elicited::Accepted(values) => values.get("ok").and_then(Value::as_bool).unwrap_or(false),
                _ => false,
            };
            Ok(format!("state-ok: confirmed={confirmed}"))
        }),
        Tool::new("test_input_required_result_tampered_state", "Asks for a confirmation.", |_: NoArgs| {
            let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
            ask::elicit("confirm", "Please confirm", schema)?;
            Ok(String::from("state-ok"))
        }),
        Tool::new("test_input_required_result_multiple_inputs", "Asks three questions at once.", |_: NoArgs| {
            let name = ask::elicit("user_name", "What is your name?", form("name"));
            let greeting = ask::sample("greeting", "Generate a greeting", 50);
            let roots = ask::roots("client_roots");
            let (name, greeting, roots) = (filled(name?, "name"), greeting?, roots?);
            Ok(format!("{greeting} {name} ({} roots)", roots.len()))
        }),
        Tool::new("test_input_required_result_multi_round", "Asks two questions, one after the other.", |_: NoArgs| {
            let name = filled(ask::elicit("step1", "Step 1: What is your name?", form("name"))?, "name");
            let color = filled(ask::elicit("step2", "Step 2: What is your favorite color?", form("color"))?, "color");
            Ok(format!("{name} likes {color}"))
        }),
        Tool::new("test_missing_capability", "Needs the client's model: fails without sampling.", |_: NoArgs| {
            Ok(ask::sample("question", "Say hello", 20)?)
        }),
        Tool::new("test_streaming_elicitation", "Asks the user's name.", |_: NoArgs| {
            Ok(format!("Hello, {}!", filled(ask::elicit("user_name", "What is your name?", form("name"))?, "name")))
        }),
        Tool::new("test_logging_tool", "Logs three lines to the host's log.", |_: NoArgs| {
            for line in ["Tool execution started", "Tool processing data", "Tool execution completed"] {
                toolmesh_guest::host::log(toolmesh_guest::host::Level::Info, line);
            }
            Ok(String::from("Logged three lines"))
        }),
        Tool::new(
            "test_input_required_result_capabilities",
            "Asks what the client can answer: a form, or else its model.",
            |_: NoArgs| {
                // A client without forms is asked through its model.
                match ask::elicit("user_name", "What is your name?", form("name")) {
                    Err(ask::AskError::Unsupported(_)) => Ok(ask::sample("greeting", "Generate a greeting", 50)?),
                    answer => Ok(format!("Hello, {}!", filled(answer?, "name"))),
                }
            },
        ),
    ]
}

#[derive(Deserialize, JsonSchema)]
struct Name {
    /// Who to greet.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct Uri {
    /// A resource of this package, as it offers it.
    uri: String,
}

#[derive(Deserialize, JsonSchema)]
struct Seconds {
    /// How long to work, in seconds.
    #[serde(default)]
    seconds: f64,
}

/// The tools the tasks extension's scenarios call (SEP-2663).
fn task_tools() -> Vec<Tool> {
    let nap = |seconds: f64| std::thread::sleep(std::time::Duration::from_secs_f64(seconds.clamp(0.0, 30.0)));
    vec![
        Tool::new("greet", "Greets someone (never a task).", |a: Name| Ok(format!("Hello, {}!", a.name))),
        Tool::new(
            "slow_compute",
            "Works for `seconds` seconds, reporting progress, then answers.",
            move |a: Seconds| {
                let steps = (a.seconds.clamp(0.0, 30.0) * 4.0).ceil() as u32;
                for step in 0..steps {
                    let message = format!("{:.2} of {} seconds", f64::from(step) / 4.0, a.seconds);
                    toolmesh_guest::host::progress(f64::from(step), Some(f64::from(steps)), Some(&message));
                    nap(a.seconds / f64::from(steps));
                }
                Ok(format!("Computed after {} seconds", a.seconds))
            },
        )
        .read_only()
        .idempotent()
        .as_task(TaskSupport::Optional),
        Tool::new("failing_job", "Fails after a second, as the tool.", move |_: NoArgs| -> Result<String, ToolError> {
            nap(1.0);
            Err(ToolError::failed("the job failed"))
        })
        .as_task(TaskSupport::Required),
        Tool::new(
            "protocol_error_job",
            "Crashes: a protocol-level failure.",
            |_: NoArgs| -> Result<String, ToolError> { panic!("the job crashed") },
        )
        .as_task(TaskSupport::Optional),
        Tool::new("confirm_delete", "Asks for a confirmation, then deletes nothing.", |_: NoArgs| {
            let schema =
                json!({"type": "object", "properties": {"confirm": {"type": "boolean"}}, "required": ["confirm"]});
            let confirmed = match ask::elicit("confirm", "Delete everything?", schema)? {
                ask::Elicited::Accepted(values) => values.get("confirm").and_then(Value::as_bool).unwrap_or(false),
                _ => false,
            };
            Ok(format!("confirmed: {confirmed}"))
        })
        .as_task(TaskSupport::Optional),
        Tool::new("multi_input", "Asks two questions at once.", |_: NoArgs| {
            let first = ask::elicit("first", "First value?", form("value"));
            let second = ask::elicit("second", "Second value?", form("value"));
            Ok(format!("{} and {}", filled(first?, "value"), filled(second?, "value")))
        })
        .as_task(TaskSupport::Optional),
        Tool::new("test_tool_with_task", "Asks a name, then works as a task.", move |_: NoArgs| {
            let name = filled(ask::elicit("user_name", "What is your name?", form("name"))?, "name");
            nap(0.5);
            Ok(format!("Done for {name}"))
        })
        .as_task(TaskSupport::Required),
    ]
}

fn tools() -> Vec<Tool> {
    let mut tools = asking_tools();
    tools.extend(task_tools());
    tools.extend(vec![
        Tool::new(
            "test_update_resource",
            "Tells subscribers that resource `uri` of this package changed.",
            |a: Uri| {
                Resource::updated(&a.uri);
                Ok(format!("reported {}", a.uri))
            },
        ),
        Tool::new("test_simple_text", "Returns a simple text response.", |_: NoArgs| {
            Ok(String::from("This is a simple text response for testing."))
        }),
        Tool::new("test_image_content", "Returns a 1x1 red PNG.", |_: NoArgs| Ok(red_pixel())),
        Tool::new("test_multiple_content_types", "Returns text, an image and an embedded resource.", |_: NoArgs| {
            Ok(Output::new().text("Multiple content types test:").image(red_pixel()).resource(
                "test://mixed-content-resource",
                Contents::text(r#"{"test":"data","value":123}"#).mime_type("application/json"),
            ))
        }),
        Tool::new("test_audio_content", "Returns a short WAV file.", |_: NoArgs| Ok(silence_wav())),
        Tool::new("test_embedded_resource", "Returns an embedded text resource.", |_: NoArgs| {
            Ok(Output::new().resource(
                "test://embedded-resource",
                Contents::text("This is an embedded resource content.").mime_type("text/plain"),
            ))
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
        // A parameter also sent as an HTTP header (SEP-2243), which the
        // gateway checks against the body.
        Tool::new(
            "test_custom_header",
            "Echoes the region, also sent as the Mcp-Param-Region header.",
            |args: Map<String, Value>| {
                Ok(format!("region: {}", args.get("region").and_then(Value::as_str).unwrap_or_default()))
            },
        )
        .input_schema_json(json!({
            "type": "object",
            "properties": {"region": {"type": "string", "description": "Where to run", "x-mcp-header": "Region"}},
            "required": ["region"]
        })),
        Tool::new("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", |_: Map<String, Value>| {
            Ok(String::from("ok"))
        })
        .input_schema_json(json_schema_2020_12()),
    ]);
    tools
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text", |_| {
            Ok(Contents::text("This is the content of the static text resource."))
        })
        .description("A static text resource.")
        .mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary", |_| Ok(Contents::blob(RED_PIXEL.to_vec())))
            .description("A static binary resource: a 1x1 red PNG.")
            .mime_type("image/png"),
        Resource::template("test://template/{id}/data", "template-data", |read| {
            let id = read.var("id").unwrap_or_default();
            let data = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            Ok(Contents::text(data.to_string()))
        })
        .description("Data for an ID, from a template.")
        .mime_type("application/json"),
    ]
}

fn prompts() -> Vec<Prompt> {
    vec![
        Prompt::new("test_simple_prompt", "A simple prompt without arguments.")
            .handler(|_| Ok(vec![Message::user("This is a simple prompt for testing.")])),
        Prompt::new("test_prompt_with_arguments", "A prompt with two arguments.")
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true)
            .handler(|args| {
                let (a, b) = (args.get("arg1").unwrap_or_default(), args.get("arg2").unwrap_or_default());
                Ok(vec![Message::user(format!("Prompt with arguments: arg1='{a}', arg2='{b}'"))])
            }),
        Prompt::new("test_prompt_with_embedded_resource", "A prompt embedding a resource.")
            .argument("resourceUri", "URI of the resource to embed", true)
            .handler(|args| {
                let uri = args.get("resourceUri").unwrap_or_default();
                let embedded = Contents::text("Embedded resource content for testing.").mime_type("text/plain");
                Ok(vec![Message::user(embedded.at(uri)), Message::user("Please process the embedded resource above.")])
            }),
        Prompt::new("test_prompt_with_image", "A prompt with an image.")
            .handler(|_| Ok(vec![Message::user(red_pixel()), Message::user("Please analyze the image above.")])),
        Prompt::new("test_input_required_result_prompt", "A prompt that asks the user for its context first.").handler(
            |_| {
                let context = filled(
                    ask::elicit("user_context", "What context should the prompt use?", form("context"))?,
                    "context",
                );
                Ok(vec![Message::user(format!("Use this context: {context}"))])
            },
        ),
    ]
}

toolmesh_guest::export_tools!(tools, resources = resources, prompts = prompts);
