use super::*;

fn run(code: &str) -> Report {
    run_javascript(RunArgs { code: code.into(), input: String::new(), vars: Map::new() }).unwrap().0
}

#[test]
fn prints_and_returns_the_last_value() {
    let report = run("console.log('a', 1, [1, 'x'], {k: null}); const xs = [1, 2, 3]; xs.map(x => x * 2)");
    assert_eq!(report.stdout, "a 1 [ 1, \"x\" ] { k: null }\n");
    assert_eq!(report.result, serde_json::json!([2, 4, 6]));
    assert_eq!(report.result_type, ResultType::Json);
    assert!(report.error.is_none());
}

#[test]
fn exceptions_are_results_with_a_stack() {
    let report = run("function f() { null.x }\nf()");
    let error = report.error.unwrap();
    assert_eq!(error.kind, "TypeError");
    assert!(error.traceback.contains("<code>:1"), "{}", error.traceback);
    let thrown = run("throw {code: 7}").error.unwrap();
    assert_eq!((thrown.kind.as_str(), thrown.message.as_str()), ("thrown value", "{ code: 7 }"));
}

#[test]
fn recursion_and_allocation_are_ordinary_errors() {
    let deep = run("function f(n) { return f(n + 1) + 1 }\nf(0)").error.unwrap();
    assert_eq!(deep.kind, "RangeError", "{deep:?}");
    let big = run("let a = []; for (;;) a.push('x'.repeat(1 << 20) + a.length)").error.unwrap();
    assert!(big.message.contains("out of memory"), "{big:?}");
}

#[test]
fn promises_are_awaited() {
    let report = run("(async () => { const v = await Promise.resolve(20); return v + 1 })()");
    assert_eq!(report.result, serde_json::json!(21));
    let rejected = run("Promise.reject(new SyntaxError('no'))").error.unwrap();
    assert_eq!((rejected.kind.as_str(), rejected.message.as_str()), ("SyntaxError", "no"));
}

#[test]
fn input_and_vars_are_globals() {
    let mut vars = Map::new();
    vars.insert("n".into(), serde_json::json!({"a": [1, 2]}));
    let args =
        RunArgs { code: "[readline(), readline(), readline(), n.a.length]".into(), input: "x\ny\n".into(), vars };
    assert_eq!(run_javascript(args).unwrap().0.result, serde_json::json!(["x", "y", null, 2]));
    let mut bad = Map::new();
    bad.insert("this".into(), serde_json::json!(1));
    assert!(run_javascript(RunArgs { code: "1".into(), input: String::new(), vars: bad }).is_err());
}

#[test]
fn values_json_cannot_hold_come_back_as_text() {
    let report = run("const o = {}; o.self = o; o");
    assert_eq!((report.result, report.result_type), (serde_json::json!("{ self: [Circular] }"), ResultType::Repr));
    assert_eq!(run("undefined").result_type, ResultType::None);
    assert_eq!(run("10n ** 20n").result, serde_json::json!("100000000000000000000n"));
}

#[test]
fn floods_are_cut() {
    let report = run("for (let i = 0; i < 100000; i++) console.log('line', i)");
    assert!(report.truncated);
    assert!(report.stdout.ends_with("more characters dropped]"));
    assert!(report.stdout.chars().count() < streams::MAX_STREAM + 100);
}

#[test]
fn the_host_is_out_of_reach() {
    let report = run("[typeof require, typeof process, typeof fetch, typeof setTimeout, typeof std, typeof os]");
    assert_eq!(report.result, serde_json::json!(vec!["undefined"; 6]));
}

#[test]
fn maps_and_sets_come_back_as_text_not_as_empty_objects() {
    let report = run("[new Map([[1, 'a']]), new Set([2])]");
    assert_eq!(
        (report.result, report.result_type),
        (serde_json::json!("[ Map(1) { 1 => \"a\" }, Set(1) { 2 } ]"), ResultType::Repr)
    );
}

#[test]
fn lone_surrogates_and_hostile_values_still_give_a_report() {
    let report = run("console.log('a\\ud800b'); '\\udfff'");
    assert_eq!(report.error, None, "{report:?}");
    assert!(report.stdout.starts_with('a') && report.stdout.ends_with("b\n"), "{report:?}");
    let thrown = run("throw new Proxy(new Error('x'), { getPrototypeOf() { throw 1 } })").error.unwrap();
    assert_eq!(thrown.kind, "thrown value", "{thrown:?}");
    let faked = run("JSON.stringify = () => { throw 1 }; String = null; Object.keys = null; [1, 2]");
    assert_eq!((faked.result, faked.result_type), (serde_json::json!([1, 2]), ResultType::Json));
}

#[test]
fn output_is_capped_in_encoded_bytes() {
    let report =
        run("console.log('\\x01'.repeat(1e5)); console.error('\\x01'.repeat(1e5)); console.log('x'.repeat(5e7))");
    let encoded =
        serde_json::to_string(&report.stdout).unwrap().len() + serde_json::to_string(&report.stderr).unwrap().len();
    assert!(report.truncated && encoded < 2 * streams::MAX_STREAM + 200, "{encoded}");
    assert!(report.stdout.ends_with("more characters dropped]"), "{}", &report.stdout[report.stdout.len() - 80..]);
}

#[test]
fn vars_cannot_reach_the_global_objects_prototype() {
    for name in ["__proto__", "undefined", "NaN", "Infinity", "globalThis"] {
        let mut vars = Map::new();
        vars.insert(name.into(), serde_json::json!(1));
        assert!(run_javascript(RunArgs { code: "1".into(), input: String::new(), vars }).is_err(), "{name}");
    }
}
