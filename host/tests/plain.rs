//! Components of another world: plain exported functions as tools. The
//! `plain` fixture (tests/plain, built with wit-bindgen) exercises every
//! WIT type; components written here in WAT are the hostile shapes a
//! stranger's component may take.

mod common;

use common::*;
use serde_json::{Value, json};
use toolmesh_host::sandbox::{Content, SandboxError, ToolDescriptor};

fn tool<'a>(tools: &'a [ToolDescriptor], name: &str) -> &'a ToolDescriptor {
    tools.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tool {name}"))
}

/// Every field of `everything`, with values at the edges of their types.
fn everything() -> Value {
    json!({
        "flag": true, "tiny": -128, "byte": 255, "short": -32768, "ushort": 65535,
        "int": -2147483648i64, "uint": 4294967295u64, "long": -9223372036854775807i64, "ulong": 18446744073709551615u64,
        "single": 1.5, "double": -2.25e300, "letter": "ü", "text": "tab\there \u{1F600}",
        "blob": "AAEC/w==", "numbers": [1, -2, 3], "maybe": null, "maybe-maybe": {"some": 7},
        "pair": [9, "nine"], "shape": {"rectangle": [{"x": 0.5, "y": 1.0}, {"x": 2.5, "y": 4.0}]},
        "color": "blue", "permissions": ["read", "execute"], "outcome": {"err": "nope"}, "done": {"ok": null}
    })
}

#[tokio::test]
async fn every_wit_type_goes_through_json_and_back() {
    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    assert!(plain.is_plain());
    let out = call(&sandbox, &plain, "values.echo", json!({"value": everything()})).await.unwrap();
    let mut expected = everything();
    // Options left out come back as none; others exactly as sent.
    expected["maybe"] = Value::Null;
    assert_eq!(structured(&out), &expected);
    // The other shapes of each type.
    let mut value = everything();
    value["maybe"] = json!("here");
    value["maybe-maybe"] = json!({"some": null});
    value["shape"] = json!("nothing");
    value["outcome"] = json!({"ok": 5});
    value["permissions"] = json!([]);
    value["double"] = json!("NaN");
    value["single"] = json!("-Infinity");
    let out = call(&sandbox, &plain, "values.echo", json!({"value": value.clone()})).await.unwrap();
    assert_eq!(structured(&out), &value);
    value["maybe-maybe"] = Value::Null;
    let out = call(&sandbox, &plain, "values.echo", json!({"value": value.clone()})).await.unwrap();
    assert_eq!(structured(&out)["maybe-maybe"], Value::Null);

    let area = |shape: Value| call(&sandbox, &plain, "values.area", json!({"shape": shape}));
    assert_eq!(structured(&area(json!({"circle": 1.0})).await.unwrap()), &json!(std::f64::consts::PI));
    assert_eq!(
        structured(&area(json!({"rectangle": [{"x": 0, "y": 0}, {"x": 2, "y": 3}]})).await.unwrap()),
        &json!(6.0)
    );
    let out = call(&sandbox, &plain, "values.describe", json!({"color": "red", "permissions": ["write", "read"]}))
        .await
        .unwrap();
    assert_eq!(structured(&out), &json!(["red Permissions(READ | WRITE)", 2]));
    let out = call(&sandbox, &plain, "values.count_bytes", json!({"blob": "aGVsbG8="})).await.unwrap();
    assert_eq!(structured(&out), &json!(5));
    let out = call(&sandbox, &plain, "add", json!({"a": 4294967295u64, "b": 2})).await.unwrap();
    assert_eq!(structured(&out), &json!(1));
    // A string result is text; an absent option is none.
    let out = call(&sandbox, &plain, "values.greet", json!({"name": "Ann"})).await.unwrap();
    assert_eq!(out, vec![Content::Text("Hello, Ann!".into())]);
    let out = call(&sandbox, &plain, "values.greet", json!({"name": "Bo", "times": 2})).await.unwrap();
    assert_eq!(text(&out), "Hello, Bo! Hello, Bo!");
}

#[tokio::test]
async fn results_and_errors_become_mcp_results() {
    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    let out = call(&sandbox, &plain, "values.divide", json!({"dividend": 7, "divisor": -2})).await.unwrap();
    assert_eq!(structured(&out), &json!(-3));
    let err = call(&sandbox, &plain, "values.divide", json!({"dividend": 7, "divisor": 0})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::ToolFailed(m) if m == "cannot divide 7 by 0"), "{err:?}");
    assert_eq!(call(&sandbox, &plain, "values.check", json!({"positive": 1})).await.unwrap(), vec![]);
    let err = call(&sandbox, &plain, "values.check", json!({"positive": 0})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::ToolFailed(m) if m == "0 is not positive"), "{err:?}");
    // A trap is contained, and the next call runs in a fresh instance.
    let err = call(&sandbox, &plain, "values.crash", json!({"message": "on purpose"})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::Trap { message } if message.contains("on purpose")), "{err:?}");
    let out = call(&sandbox, &plain, "bench.echo_text", json!({"text": "still here"})).await.unwrap();
    assert_eq!(text(&out), "still here");
}

#[tokio::test]
async fn bad_arguments_name_the_field_and_what_it_needs() {
    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    let bad = |tool: &'static str, args: Value| {
        let (sandbox, plain) = (&sandbox, &plain);
        async move {
            match call(sandbox, plain, tool, args).await {
                Err(SandboxError::InvalidArguments(message)) => message,
                other => panic!("{tool}: expected invalid arguments, got {other:?}"),
            }
        }
    };
    let mut value = everything();
    value["tiny"] = json!(128);
    let m = bad("values.echo", json!({"value": value})).await;
    assert!(m.contains("`value.tiny`") && m.contains("-128 to 127"), "{m}");
    let mut value = everything();
    value["shape"] = json!({"triangle": 1});
    let m = bad("values.echo", json!({"value": value})).await;
    assert!(m.contains("`value.shape`") && m.contains("no case `triangle`"), "{m}");
    let mut value = everything();
    value["pair"] = json!([1]);
    let m = bad("values.echo", json!({"value": value})).await;
    assert!(m.contains("`value.pair`") && m.contains("2 items"), "{m}");
    let mut value = everything();
    value.as_object_mut().unwrap().remove("color");
    assert!(bad("values.echo", json!({"value": value})).await.contains("`value.color` is missing"));
    assert!(bad("values.count_bytes", json!({"blob": "not base64!"})).await.contains("base64"));
    assert!(bad("values.greet", json!({"name": "x", "extra": 1})).await.contains("unknown field `extra`"));
    assert!(bad("add", json!([1, 2])).await.contains("JSON object"));
    assert!(bad("add", json!({"a": 1.5, "b": 1})).await.contains("`a`: expected an integer"));
    assert!(bad("values.describe", json!({"color": "red", "permissions": ["fly"]})).await.contains("not a flag"));
    assert!(bad("nothing.here", json!({})).await.contains("no tool `nothing.here`"));
    // Whatever the JSON, an error and never a panic.
    let junk = [json!(null), json!(true), json!(-1), json!("s"), json!([]), json!({}), json!([[[]]]), json!({"a": {}})];
    for tool in ["values.echo", "values.area", "values.describe", "add", "values.greet"] {
        for a in &junk {
            for b in &junk {
                let args = json!({"value": a, "shape": b, "color": a, "permissions": b, "a": a, "b": b, "name": a});
                let _ = call(&sandbox, &plain, tool, args).await;
            }
        }
    }
    let out = call(&sandbox, &plain, "add", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(structured(&out), &json!(3));
}

#[tokio::test]
async fn huge_arguments_are_refused_before_they_take_the_hosts_memory() {
    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    // 1 GiB of base64 for a list<u8>: refused from its size alone.
    let args = format!("{{\"blob\": \"{}\"}}", "A".repeat(1 << 30));
    let err = sandbox.call(&plain, "values.count_bytes", &args, Default::default()).await.unwrap_err();
    assert!(
        matches!(&err, SandboxError::InvalidArguments(m) if m.contains("larger than the call's memory limit")),
        "{err:?}"
    );
    drop(args);
    // Under the text cap but over what its values would take in the host.
    let mut value = everything();
    value["numbers"] = json!(vec![0; 3_000_000]);
    let err = call(&sandbox, &plain, "values.echo", json!({"value": value})).await.unwrap_err();
    assert!(matches!(&err, SandboxError::InvalidArguments(m) if m.contains("too large")), "{err:?}");
    // A blob that fits goes through.
    let blob = base64_of(&vec![7u8; 100_000]);
    let out = call(&sandbox, &plain, "values.count_bytes", json!({"blob": blob})).await.unwrap();
    assert_eq!(structured(&out), &json!(100_000));
}

fn base64_of(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn tools_are_described_from_the_wit() {
    let sandbox = sandbox_with(small_limits());
    let plain = load(&sandbox, "plain");
    let tools = sandbox.describe(&plain).await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "add",
            "bench.echo_text",
            "bench.greet",
            "files.config",
            "files.list_dir",
            "files.read",
            "files.write",
            "values.area",
            "values.check",
            "values.count_bytes",
            "values.crash",
            "values.describe",
            "values.divide",
            "values.echo",
            "values.greet"
        ]
    );
    let echo = tool(&tools, "values.echo");
    let fields = &echo.input_schema["properties"]["value"]["properties"];
    assert_eq!(fields["tiny"], json!({"type": "integer", "minimum": -128, "maximum": 127}));
    assert_eq!(fields["ulong"]["maximum"], json!(u64::MAX));
    assert_eq!(fields["blob"], json!({"type": "string", "contentEncoding": "base64"}));
    assert_eq!(fields["letter"]["maxLength"], json!(1));
    assert_eq!(fields["color"]["enum"], json!(["red", "green", "blue"]));
    assert_eq!(fields["permissions"]["uniqueItems"], json!(true));
    assert_eq!(fields["pair"]["prefixItems"].as_array().unwrap().len(), 2);
    assert_eq!(fields["shape"]["oneOf"].as_array().unwrap().len(), 3);
    assert_eq!(fields["outcome"]["oneOf"][1]["required"], json!(["err"]));
    let required = echo.input_schema["properties"]["value"]["required"].as_array().unwrap();
    assert!(!required.contains(&json!("maybe")) && required.contains(&json!("flag")));
    assert_eq!(echo.output_schema.as_ref().unwrap()["required"], json!(["result"]));
    // A string result has no output schema; result<T, E> shows T's.
    assert!(tool(&tools, "values.greet").output_schema.is_none());
    assert_eq!(
        tool(&tools, "values.divide").output_schema.as_ref().unwrap()["properties"]["result"]["type"],
        "integer"
    );
    // Without a package-docs section, the signature describes the tool.
    assert_eq!(tool(&tools, "add").description, "add: func(a: u32, b: u32) -> u32");
}

/// `bytes` with a custom section `name` holding `data` appended.
fn with_section(mut bytes: Vec<u8>, name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = leb(name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    bytes.push(0);
    bytes.extend(leb(body.len()));
    bytes.extend(body);
    bytes
}

fn leb(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test]
async fn package_docs_describe_tools_and_fields() {
    let sandbox = sandbox_with(small_limits());
    let bytes = std::fs::read(component_path("plain")).unwrap();
    // The section as wit-component writes it: a version byte, then JSON.
    let docs = json!({
        "interfaces": {"values": {
            "docs": "Values of every WIT type.",
            "funcs": {"area": {"docs": "The area of a shape."}, "greet": "Greets someone."},
            "types": {
                "point": {"docs": "A point on a plane.", "items": {"x": "Distance along the x axis.", "y": "Distance along the y axis."}},
                "shape": {"docs": "A shape to measure.", "items": {"circle": "A circle of this radius."}}
            }
        }},
        "worlds": {"plain": {"func_exports": {"add": {"docs": "Adds two numbers."}}}}
    });
    let mut data = vec![1];
    data.extend(serde_json::to_vec(&docs).unwrap());
    let component = sandbox.load(&with_section(bytes, "package-docs", &data)).unwrap();
    let tools = sandbox.describe(&component).await.unwrap();
    assert_eq!(tool(&tools, "add").description, "Adds two numbers.");
    assert_eq!(
        tool(&tools, "values.greet").description,
        "Greets someone.\n\nPart of `values`: Values of every WIT type."
    );
    let area = tool(&tools, "values.area");
    let shape = &area.input_schema["properties"]["shape"];
    assert_eq!(shape["description"], "A shape to measure.");
    assert_eq!(shape["oneOf"][0]["description"], "A circle of this radius.");
    let point = &shape["oneOf"][1]["properties"]["rectangle"]["prefixItems"][0];
    assert_eq!(point["properties"]["x"]["description"], "Distance along the x axis.");
    // A section that cannot be read leaves the signatures.
    let bytes = std::fs::read(component_path("plain")).unwrap();
    let component = sandbox.load(&with_section(bytes, "package-docs", b"\x01{not json")).unwrap();
    let tools = sandbox.describe(&component).await.unwrap();
    assert!(tool(&tools, "add").description.starts_with("add: func"));
}

/// A component exporting `funcs` (WAT) from a core module with a memory
/// and a realloc.
fn wat_component(types: &str, funcs: &str, exports: &str) -> String {
    format!(
        r#"(component
  (core module $m
    (memory (export "mem") 1)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 8)
    (func (export "seven") (result i32) i32.const 7)
    (func (export "take") (param i32 i32))
    (func (export "drop-one") (param i32)))
  (core instance $i (instantiate $m))
  (alias core export $i "mem" (core memory $mem))
  (alias core export $i "realloc" (core func $realloc))
  {types}
  {funcs}
  {exports}
)"#
    )
}

fn load_error(wat: &str) -> String {
    let sandbox = sandbox_with(small_limits());
    match sandbox.load(wat.as_bytes()) {
        Ok(_) => panic!("the component loaded"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn hostile_shapes_are_refused_or_contained() {
    // A resource parameter: refused, naming the function and the type.
    let wat = wat_component(
        r#"(type $r (resource (rep i32)))
  (export $thing "thing" (type $r))"#,
        r#"(func $f (param "it" (own $thing)) (canon lift (core func $i "drop-one")))"#,
        r#"(export "take-thing" (func $f))"#,
    );
    let err = load_error(&wat);
    assert!(err.contains("take-thing") && err.contains("parameter `it`") && err.contains("resource"), "{err}");

    // A type nested 10 000 deep: refused, not a stack overflow.
    let mut types = String::from("(type $t0 (list u8))\n");
    for n in 1..10_000 {
        types.push_str(&format!("  (type $t{n} (list $t{}))\n", n - 1));
    }
    let wat = wat_component(
        &types,
        r#"(func $f (param "x" $t9999) (canon lift (core func $i "take") (memory $mem) (realloc $realloc)))"#,
        r#"(export "deep" (func $f))"#,
    );
    let sandbox = sandbox_with(small_limits());
    match sandbox.load(wat.as_bytes()) {
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("type nesting is too deep"), "{e}");
        }
        Ok(_) => panic!("a 10 000-deep type was accepted"),
    }

    // Deep enough for the validator, too deep for a tool.
    let mut types = String::from("(type $t0 (list u8))\n");
    for n in 1..80 {
        types.push_str(&format!("  (type $t{n} (list $t{}))\n", n - 1));
    }
    let wat = wat_component(
        &types,
        r#"(func $f (param "x" $t79) (canon lift (core func $i "take") (memory $mem) (realloc $realloc)))"#,
        r#"(export "deep" (func $f))"#,
    );
    let err = load_error(&wat);
    assert!(err.contains("function `deep`") && err.contains("nest more than 64 levels"), "{err}");

    // Types shared by reference that would expand to 2^17 schema nodes
    // (the validator allows a million).
    let mut types = String::from("(type $t0 (tuple u8 u8))\n");
    for n in 1..17 {
        types.push_str(&format!("  (type $t{n} (tuple $t{m} $t{m}))\n", m = n - 1));
    }
    let wat = wat_component(
        &types,
        r#"(func $f (param "x" $t16) (canon lift (core func $i "drop-one") (memory $mem) (realloc $realloc)))"#,
        r#"(export "wide" (func $f))"#,
    );
    let err = load_error(&wat);
    assert!(err.contains("function `wide`") && err.contains("schema nodes"), "{err}");

    // Nothing exported: refused, saying what a tool must export.
    let err = load_error(&wat_component("", "", ""));
    assert!(err.contains("toolmesh:tool/handler") && err.contains("plain functions"), "{err}");
}

#[tokio::test]
async fn many_functions_and_shared_interface_names_get_distinct_tools() {
    let sandbox = sandbox_with(small_limits());
    // An interface of 300 functions: 300 tools.
    let exports: String = (0..300).map(|n| format!(r#"(export "f{n}" (func $seven))"#)).collect();
    let wat = wat_component(
        "",
        r#"(func $seven (result u32) (canon lift (core func $i "seven")))"#,
        &format!(r#"(instance $many {exports}) (export "test:many/many@1.0.0" (instance $many))"#),
    );
    let many = sandbox.load(wat.as_bytes()).unwrap();
    let tools = sandbox.describe(&many).await.unwrap();
    assert_eq!(tools.len(), 300);
    let out = call(&sandbox, &many, "many.f299", json!({})).await.unwrap();
    assert_eq!(structured(&out), &json!(7));

    // Two interfaces called `time` from two packages: qualified by package.
    let wat = wat_component(
        "",
        r#"(func $seven (result u32) (canon lift (core func $i "seven")))"#,
        r#"(instance $a (export "now" (func $seven)))
  (instance $b (export "now" (func $seven)))
  (export "acme:clock/time" (instance $a))
  (export "other:clock/time@2.0.0" (instance $b))
  (export "now" (func $seven))"#,
    );
    let clocks = sandbox.load(wat.as_bytes()).unwrap();
    let names: Vec<String> = sandbox.describe(&clocks).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["acme_clock.time.now", "now", "other_clock.time.now"]);

    // Same package, two versions: no name tells them apart, so refused.
    let wat = wat_component(
        "",
        r#"(func $seven (result u32) (canon lift (core func $i "seven")))"#,
        r#"(instance $a (export "now" (func $seven)))
  (export "acme:clock/time@1.0.0" (instance $a))
  (export "acme:clock/time@2.0.0" (instance $a))"#,
    );
    let err = load_error(&wat);
    assert!(err.contains("would both be tool `acme_clock.time.now`"), "{err}");
}
