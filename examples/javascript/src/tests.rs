use super::*;

fn run(code: &str) -> Report {
    run_javascript(RunArgs {
        code: code.into(),
        input: String::new(),
        vars: Map::new(),
        session: None,
        files: BTreeMap::new(),
    })
    .unwrap()
    .0
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
    let args = RunArgs {
        code: "[readline(), readline(), readline(), n.a.length]".into(),
        input: "x\ny\n".into(),
        vars,
        session: None,
        files: BTreeMap::new(),
    };
    assert_eq!(run_javascript(args).unwrap().0.result, serde_json::json!(["x", "y", null, 2]));
    let mut bad = Map::new();
    bad.insert("this".into(), serde_json::json!(1));
    assert!(
        run_javascript(RunArgs {
            code: "1".into(),
            input: String::new(),
            vars: bad,
            session: None,
            files: BTreeMap::new()
        })
        .is_err()
    );
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
        assert!(
            run_javascript(RunArgs {
                code: "1".into(),
                input: String::new(),
                vars,
                session: None,
                files: BTreeMap::new()
            })
            .is_err(),
            "{name}"
        );
    }
}

/// Stands in for the node: `echo` answers with its arguments as structured
/// content, `text` with text, `fail` fails; answers come last-started first.
#[derive(Default)]
struct FakeHost {
    started: RefCell<Vec<(u64, String, String)>>,
}

impl ToolHost for FakeHost {
    fn start(&self, name: &str, arguments: &str) -> Result<u64, calls::Failure> {
        if name == "nope" {
            return Err(("unknown-tool".into(), "unknown tool `nope`".into()));
        }
        let mut started = self.started.borrow_mut();
        let id = started.len() as u64 + 1;
        started.push((id, name.into(), arguments.into()));
        Ok(id)
    }

    fn wait_any(&self, calls: &[u64]) -> (u64, Result<String, calls::Failure>) {
        let id = *calls.iter().max().unwrap();
        let started = self.started.borrow();
        let (_, name, arguments) = &started[id as usize - 1];
        let outcome = match name.rsplit('.').next().unwrap_or_default() {
            "fail" => Err(("failed".into(), "it broke".into())),
            "text" => {
                Ok(serde_json::json!({"content": [{"type": "text", "text": format!("hi {arguments}")}]}).to_string())
            }
            _ => Ok(format!(r#"{{"content":[],"structuredContent":{arguments}}}"#)),
        };
        (id, outcome)
    }

    fn describe(&self, query: &str) -> Result<String, calls::Failure> {
        Ok(serde_json::json!([{"name": "a.b.echo", "description": query, "signature": "a.b.echo(args: {}): unknown"}])
            .to_string())
    }
}

/// Runs the calls of one session in turn.
fn run_session(codes: &[&str]) -> Vec<Report> {
    codes
        .iter()
        .map(|code| {
            let args = RunArgs {
                code: (*code).into(),
                input: String::new(),
                vars: Map::new(),
                session: Some("s".into()),
                files: BTreeMap::new(),
            };
            run_javascript(args).unwrap().0
        })
        .collect()
}

#[test]
fn a_session_keeps_globals_between_runs() {
    let reports = run_session(&[
        "var total = 1; function add(n) { total += n; return total }\nlet kept = 'let too'; add(1)",
        "add(40)",
        "const late = await Promise.resolve(2); var fromAsync = late * 2; total + fromAsync",
        "[kept, fromAsync, typeof tools]",
    ]);
    let results: Vec<_> =
        reports.iter().map(|r| (r.result.clone(), r.error.as_ref().map(|e| e.message.clone()))).collect();
    assert_eq!(results[0].0, serde_json::json!(2), "{results:?}");
    assert_eq!(results[1].0, serde_json::json!(42), "{results:?}");
    assert_eq!(results[2].0, serde_json::json!(46), "{results:?}");
    assert_eq!(results[3].0, serde_json::json!(["let too", 4, "object"]), "{results:?}");
    // Without a session nothing carries over.
    assert_eq!(run("typeof total").result, serde_json::json!("undefined"));
}

fn run_calling(code: &str) -> (Report, Rc<FakeHost>) {
    let host = Rc::new(FakeHost::default());
    let args =
        RunArgs { code: code.into(), input: String::new(), vars: Map::new(), session: None, files: BTreeMap::new() };
    (run_with(args, host.clone()).unwrap().0, host)
}

#[test]
fn top_level_await_returns_the_last_value() {
    let (report, _) = run_calling("const v = await Promise.resolve(2)\nv * 21");
    assert_eq!(report.result, serde_json::json!(42), "{report:?}");
    let (report, _) = run_calling("var x = await Promise.resolve(1); x");
    assert_eq!(report.result, serde_json::json!(1));
    let (report, _) = run_calling("await Promise.reject(new RangeError('late'))");
    assert_eq!(report.error.unwrap().kind, "RangeError");
}

#[test]
fn code_calls_tools_by_name_and_through_accessors() {
    let (report, host) = run_calling(
        "const a = await tools.call('a.b.echo', {n: 1})\nconst b = await tools.a.b.echo({n: 2})\nconst t = await tools.x.text({});\n[a, b, t, tools.a.b.echo.name]",
    );
    assert_eq!(report.result, serde_json::json!([{"n": 1}, {"n": 2}, "hi {}", "a.b.echo"]), "{report:?}");
    let names: Vec<String> = host.started.borrow().iter().map(|(_, n, _)| n.clone()).collect();
    assert_eq!(names, ["a.b.echo", "a.b.echo", "x.text"]);
}

#[test]
fn calls_made_together_are_all_started_before_any_answer() {
    let (report, host) = run_calling("await Promise.all([1, 2, 3].map(n => tools.a.echo({n})))");
    assert_eq!(report.result, serde_json::json!([{"n": 1}, {"n": 2}, {"n": 3}]), "{report:?}");
    assert_eq!(host.started.borrow().len(), 3);
}

#[test]
fn tool_failures_are_catchable_errors() {
    let (report, _) = run_calling(
        "let out = []\ntry { await tools.fail({}) } catch (e) { out.push([e.name, e.kind, e.message, e.tool, e instanceof ToolError]) }\ntry { await tools.nope({}) } catch (e) { out.push([e.kind, e.message]) }\nout",
    );
    assert_eq!(
        report.result,
        serde_json::json!([["ToolError", "failed", "it broke", "fail", true], ["unknown-tool", "unknown tool `nope`"]]),
        "{report:?}"
    );
    let (uncaught, _) = run_calling("await tools.fail({})");
    let error = uncaught.error.unwrap();
    assert_eq!((error.kind.as_str(), error.message.as_str()), ("ToolError", "it broke"));
}

#[test]
fn search_lists_tools_with_signatures() {
    let (report, _) = run_calling("tools.search('echo')[0].signature + ' / ' + tools.describe('a.b.echo').description");
    assert_eq!(report.result, serde_json::json!("a.b.echo(args: {}): unknown / a.b.echo"));
}

#[test]
fn calls_still_waiting_after_the_result_do_not_hold_it_up() {
    // A `then` chain without await still runs before the result is taken.
    let (report, _) = run_calling("let seen = []; tools.a.echo({n: 5}).then(v => print(v.n)); 'done'");
    assert_eq!((report.result, report.stdout.as_str()), (serde_json::json!("done"), "5\n"));
}

#[test]
fn files_come_in_and_written_ones_come_back() {
    let code = "const rows = files.read('data.csv').trim().split('\\n').length;
files.write('out.txt', 'rows: ' + rows);
files.write('dot.svg', '<svg/>');
files.write('raw.bin', new Uint8Array([0, 255]));
let refused = null; try { files.write('../x', 'no') } catch (e) { refused = e.message }
[rows, files.list(), files.bytes('data.csv').length, refused !== null]";
    let sent = BTreeMap::from([("data.csv".to_owned(), FileArg::Text("a\nb\nc\n".into()))]);
    let args = RunArgs { code: code.into(), input: String::new(), vars: Map::new(), session: None, files: sent };
    let Ran(report, images) = run_javascript(args).unwrap();
    assert_eq!(
        report.result,
        serde_json::json!([3, ["data.csv", "dot.svg", "out.txt", "raw.bin"], 6, true]),
        "{report:?}"
    );
    assert_eq!(images, [("image/svg+xml".to_owned(), b"<svg/>".to_vec())]);
    let listed: Vec<(&str, Option<&str>, Option<&str>, bool)> =
        report.files.iter().map(|w| (w.name.as_str(), w.text.as_deref(), w.base64.as_deref(), w.image)).collect();
    assert_eq!(
        listed,
        [
            ("dot.svg", None, None, true),
            ("out.txt", Some("rows: 3"), None, false),
            ("raw.bin", None, Some("AP8="), false)
        ]
    );
}

#[test]
fn the_output_schema_requires_only_what_every_report_has() {
    let schema = <Ran as IntoOutput>::output_schema().unwrap();
    let written = &schema["$defs"]["Written"];
    let required: Vec<&str> = written["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert_eq!(required, ["name", "mime_type", "size"], "{written}");
    assert_eq!(schema["x-toolmesh-session"], serde_json::Value::Null, "the input schema names the session, not this");
}
