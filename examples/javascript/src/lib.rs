//! `run_javascript`: runs an agent's JavaScript with QuickJS, in a fresh
//! sandbox per call.
//!
//! Every call gets a new runtime and context (and the host a new instance),
//! so nothing persists between calls. QuickJS's own heap and stack limits
//! turn runaway allocation and recursion into ordinary JS errors; the
//! node's time, memory and output limits still bound the whole call.
use rquickjs::context::EvalOptions;
use rquickjs::promise::PromiseState;
use rquickjs::{CatchResultExt, CaughtError, Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::cell::RefCell;
use std::rc::Rc;
use toolmesh_guest::IntoOutput;
use toolmesh_guest::prelude::*;

mod calls;
mod files;
mod streams;
use calls::ToolHost;
use files::{FileArg, Files, Written};
use std::collections::BTreeMap;
use streams::Streams;

/// The JS heap a call may use; past it, allocation throws "out of memory".
const HEAP_LIMIT: usize = 128 << 20;
/// The native stack JS code may use; past it, a call throws a RangeError.
const STACK_LIMIT: usize = 256 << 10;
/// Characters of a result's text form, or of an error's, kept per call.
const MAX_TEXT: usize = 20_000;
/// Bytes of a result's JSON; a larger value comes back as its text form.
/// With the streams' and the error's caps, a report stays under 1 MiB (the
/// node's default output limit) whatever the code prints.
const MAX_RESULT: usize = 200_000;
/// Pending promise jobs run after the code, at most (a loop of promises that
/// keeps queueing more is cut here).
const MAX_JOBS: usize = 1_000_000;

const PRELUDE: &str = include_str!("prelude.js");

thread_local! {
    /// The interpreter of this instance's session, between its calls.
    static INTERPRETER: RefCell<Option<Interpreter>> = const { RefCell::new(None) };
}

/// A QuickJS runtime and context with the prelude installed, and what its
/// host functions write to. Fields drop in order: the saved helpers before
/// the context and runtime they live in.
struct Interpreter {
    helpers: Persistent<Object<'static>>,
    context: Context,
    _runtime: Runtime,
    streams: Rc<RefCell<Streams>>,
    files: Rc<RefCell<Files>>,
}

impl Interpreter {
    /// A new interpreter whose calls to tools go to `host`.
    fn new(host: &Rc<dyn ToolHost>) -> Result<Self, ToolError> {
        let failed = |e: rquickjs::Error| ToolError::failed(format_args!("cannot start QuickJS: {e}"));
        let runtime = Runtime::new().map_err(failed)?;
        runtime.set_memory_limit(HEAP_LIMIT);
        runtime.set_max_stack_size(STACK_LIMIT);
        let context = Context::full(&runtime).map_err(failed)?;
        let streams = Rc::new(RefCell::new(Streams::default()));
        let files = Rc::new(RefCell::new(Files::default()));
        let helpers = context
            .with(|ctx| install(&ctx, &streams, (host, &files)).map(|helpers| Persistent::save(&ctx, helpers)))?;
        Ok(Interpreter { helpers, context, _runtime: runtime, streams, files })
    }
}
const SOURCE: &str = "<code>";

/// Arguments of `run_javascript`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-toolmesh-session" = "session"))]
struct RunArgs {
    /// JavaScript source to run as a script.
    code: String,
    /// Text that `readline()` returns line by line (and the global `input` holds).
    #[serde(default)]
    input: String,
    /// Global variables to define before the code runs (JSON values).
    #[serde(default)]
    vars: Map<String, serde_json::Value>,
    /// Keep state between runs: runs that name the same session share
    /// their global variables and functions, until it is idle for a while.
    #[serde(default)]
    session: Option<String>,
    /// Files for the code, by name: text, or `{"base64": …, "mime_type": …}`
    /// for bytes. The code reads them with `files.read(name)`.
    #[serde(default)]
    files: BTreeMap<String, FileArg>,
}

/// The exception the code raised.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Raised {
    /// The error's name (`TypeError`, …), or "thrown value" for a non-Error.
    #[serde(rename = "type")]
    kind: String,
    /// The error's message.
    message: String,
    /// The name, message and stack.
    traceback: String,
}

/// What a run produced.
#[derive(Serialize, JsonSchema, Debug)]
struct Report {
    /// What the code printed with console.log / info / debug / print.
    stdout: String,
    /// What the code printed with console.warn / error.
    stderr: String,
    /// The last expression's value (JSON, or its text form as a string); a
    /// promise is awaited first.
    result: serde_json::Value,
    /// json: `result` is the value; repr: `result` is its text form; none: no value.
    result_type: ResultType,
    /// The exception the code raised (or its promise rejected with), if any.
    error: Option<Raised>,
    /// Always null for JavaScript (there is no process to exit).
    exit_code: Option<i32>,
    /// Whether stdout or stderr was cut.
    truncated: bool,
    /// The files the code wrote with `files.write` (images also come back
    /// as image content).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    files: Vec<Written>,
}

/// A run's report and the images the code wrote.
struct Ran(Report, Vec<(String, Vec<u8>)>);

impl IntoOutput for Ran {
    fn output_schema() -> Option<serde_json::Value> {
        Json::<Report>::output_schema()
    }

    fn into_output(self) -> Result<Vec<Content>, ToolError> {
        let mut content = Json(self.0).into_output()?;
        content.extend(
            self.1.into_iter().map(|(mime_type, data)| Content::from(toolmesh_guest::Image { data, mime_type })),
        );
        Ok(content)
    }
}

/// How `result` holds the last value.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum ResultType {
    /// The value itself, as JSON.
    Json,
    /// Its text form.
    Repr,
    /// No value (`undefined`).
    None,
}

const DESCRIPTION: &str = "Runs JavaScript (ES2023, QuickJS) in a fresh, isolated sandbox and returns what it printed \
and the value of its last expression.

How to return a value: end the code with an expression (e.g. `result` or `xs.length`); its value comes back as JSON \
when JSON.stringify can encode it, else as text. Top-level `await` works, and a promise as the last value is awaited. \
console.log/info/debug and print() go to stdout, console.warn/error to stderr (each kept up to about 200 kB). A thrown \
exception is a normal result: `error` holds its type, message and stack.

Inputs: `code`; optional `input` text, read line by line with readline() (null at the end) or whole from the global \
`input`; optional `vars`, a JSON object whose keys become global variables; optional `files`, {name: text or \
{base64: ...}}, which the code reads with `files.read(name)` (text) or `files.bytes(name)` (a Uint8Array), \
`files.list()` naming them; optional `session`, a name: runs with the same session share their global variables, \
functions and files (declare variables with `var`, `function` or `globalThis.x = ...`; `let`/`const` at the top \
level also stay) until it is idle for 10 minutes.

Returning files: `files.write('chart.svg', svgText)` (or a Uint8Array, with an optional mime type); what the code \
wrote comes back with the result, images (PNG, JPEG, GIF, WebP, SVG) as images.

Calling other tools of this server, as you and with your rights: `await tools.call('examples.text.slugify', {text: \
'Hi'})` or `await tools.examples.text.slugify({text: 'Hi'})` returns the tool's structured result (or its text); \
a failure throws a ToolError (`e.kind`, `e.message`). Calls run at once with `await Promise.all([...])`. \
`tools.search('words')` lists matching tools with TypeScript-style signatures; `tools.describe(name)` gives one \
tool's schemas. Calls nest at most 3 deep and one run makes at most a few hundred; they share its time limit.

Available: the language and its standard built-ins (JSON, Math, Date, RegExp, Map/Set, typed arrays, BigInt, Intl \
is not there), console, print, readline, tools. Not available: require/import of modules, npm packages, fetch, timers \
(setTimeout), files, network, process or environment.

Limits: without a session every call starts from a clean interpreter; the JS heap is capped at 128 MiB \
and deep recursion throws a RangeError, both as ordinary exceptions; the node caps time (10 s by default) and \
output. Running out of time ends the call with an error.";

fn run_javascript(args: RunArgs) -> Result<Ran, ToolError> {
    run_with(args, Rc::new(calls::Node))
}

/// Runs `args` with `host` answering the code's calls to other tools.
fn run_with(args: RunArgs, host: Rc<dyn ToolHost>) -> Result<Ran, ToolError> {
    for key in args.vars.keys() {
        if !is_identifier(key) {
            return Err(ToolError::invalid_arguments(format_args!("`vars` key {key:?} is not a usable variable name")));
        }
    }
    // A session's interpreter outlives the call (the host keeps this
    // instance for the session's next call); otherwise it is new.
    let kept = match args.session {
        Some(_) => INTERPRETER.with(|kept| kept.borrow_mut().take()),
        None => None,
    };
    let interpreter = match kept {
        Some(kept) => kept,
        None => Interpreter::new(&host)?,
    };
    let received = interpreter.files.borrow_mut().receive(&args.files);
    let outcome = match received {
        Ok(()) => interpreter.context.with(|ctx| {
            let helpers = interpreter
                .helpers
                .clone()
                .restore(&ctx)
                .map_err(|e| ToolError::failed(format_args!("cannot set up the JS context: {e}")))?;
            run_in(&ctx, &args, &helpers, &host)
        }),
        Err(problem) => Err(ToolError::invalid_arguments(problem)),
    };
    let (written, images) = interpreter.files.borrow_mut().take_written();
    let streams = interpreter.streams.take();
    if args.session.is_some() {
        INTERPRETER.with(|kept| *kept.borrow_mut() = Some(interpreter));
    }
    let (result, result_type, error) = outcome?;
    Ok(Ran(
        Report {
            truncated: streams.truncated(),
            stdout: streams.stdout.text(),
            stderr: streams.stderr.text(),
            result,
            result_type,
            error,
            exit_code: None,
            files: written,
        },
        images,
    ))
}

type Outcome = (serde_json::Value, ResultType, Option<Raised>);

/// Runs the code in `ctx`: the prelude, the variables, the code, then its
/// pending jobs.
/// Installs the prelude in a new interpreter: `console`, `print`,
/// `readline`, `tools` and `files`, writing to `streams` and calling
/// `host`; returns the prelude's helpers.
fn install<'js>(
    ctx: &Ctx<'js>,
    streams: &Rc<RefCell<Streams>>,
    (host, files): (&Rc<dyn ToolHost>, &Rc<RefCell<Files>>),
) -> Result<Object<'js>, ToolError> {
    let setup = |e: rquickjs::Error| ToolError::failed(format_args!("cannot set up the JS context: {e}"));
    let sink = streams.clone();
    let write = Function::new(ctx.clone(), move |stream: i32, text: String, count: f64| {
        sink.borrow_mut().write(stream, &text, count as usize)
    })
    .map_err(setup)?;
    // What the prelude sends across at most (every character takes at
    // least a byte in the result).
    let limits = Object::new(ctx.clone()).map_err(setup)?;
    limits.set("streamChars", streams::MAX_STREAM + 1).map_err(setup)?;
    limits.set("textChars", MAX_TEXT + 1).map_err(setup)?;
    limits.set("resultChars", MAX_RESULT).map_err(setup)?;
    let tools = Object::new(ctx.clone()).map_err(setup)?;
    let starter = host.clone();
    let start = Function::new(ctx.clone(), move |name: String, arguments: String| {
        calls::answer(starter.start(&name, &arguments))
    })
    .map_err(setup)?;
    tools.set("start", start).map_err(setup)?;
    let describer = host.clone();
    let describe =
        Function::new(ctx.clone(), move |query: String| calls::answer(describer.describe(&query))).map_err(setup)?;
    tools.set("describe", describe).map_err(setup)?;
    install_files(ctx, &tools, files).map_err(setup)?;
    let install: Function = ctx.eval(PRELUDE).map_err(setup)?;
    install.call((write, limits, tools)).map_err(setup)
}

/// Runs the code of `args` in `ctx`, whose prelude gave `helpers`: the
/// input, the variables, the code, then its pending jobs and calls.
fn run_in<'js>(
    ctx: &Ctx<'js>,
    args: &RunArgs,
    helpers: &Object<'js>,
    host: &Rc<dyn ToolHost>,
) -> Result<Outcome, ToolError> {
    let setup = |e: rquickjs::Error| ToolError::failed(format_args!("cannot set up the JS context: {e}"));
    let begin: Function = helpers.get("begin").map_err(setup)?;
    begin.call::<_, ()>((args.input.as_str(),)).map_err(setup)?;
    let globals = ctx.globals();
    for (name, value) in &args.vars {
        let value = ctx.json_parse(value.to_string()).map_err(setup)?;
        globals.set(name.as_str(), value).map_err(setup)?;
    }

    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.backtrace_barrier = true;
    options.filename = Some(SOURCE.into());
    // Top-level `await` needs the script evaluated as async; its promise
    // then holds `{value}`, the script's last value.
    let top_level_await = args.code.contains("await");
    options.promise = top_level_await;
    let value = match ctx.eval_with_options::<Value, _>(args.code.as_str(), options).catch(ctx) {
        Ok(value) => value,
        Err(caught) => return Ok(raised(ctx, helpers, caught)),
    };
    if let Err(e) = run_until_settled(ctx, helpers, &value, host.as_ref()) {
        return Err(ToolError::failed(format_args!("cannot run the code's pending calls: {e}")));
    }
    let mut value = match value.as_promise() {
        Some(promise) => match settle(ctx, promise) {
            Ok(value) => value,
            Err(caught) => return Ok(raised(ctx, helpers, caught)),
        },
        None => value,
    };
    if top_level_await && let Some(completion) = value.as_object().and_then(|o| o.get::<_, Value>("value").ok()) {
        value = completion;
        if let Some(promise) = value.as_promise() {
            run_until_settled(ctx, helpers, &value, host.as_ref())
                .map_err(|e| ToolError::failed(format_args!("cannot run the code's pending calls: {e}")))?;
            value = match settle(ctx, promise) {
                Ok(value) => value,
                Err(caught) => return Ok(raised(ctx, helpers, caught)),
            };
        }
    }
    let describe: Function = helpers.get("result").map_err(setup)?;
    match describe.call::<_, Vec<String>>((value,)).catch(ctx) {
        Ok(parts) => Ok(result_of(parts)),
        Err(caught) => Ok(raised(ctx, helpers, caught)),
    }
}

/// The host functions behind the global `files`.
fn install_files<'js>(ctx: &Ctx<'js>, host: &Object<'js>, files: &Rc<RefCell<Files>>) -> rquickjs::Result<()> {
    let held = files.clone();
    host.set("fileNames", Function::new(ctx.clone(), move || serde_json::json!(held.borrow().names()).to_string())?)?;
    let held = files.clone();
    let read = move |name: String| -> Option<String> {
        held.borrow().read(&name).and_then(|bytes| std::str::from_utf8(bytes).ok().map(str::to_owned))
    };
    host.set("readFile", Function::new(ctx.clone(), read)?)?;
    let held = files.clone();
    let bytes = move |ctx: Ctx<'js>, name: String| -> rquickjs::Result<Value<'js>> {
        match held.borrow().read(&name) {
            Some(bytes) => Ok(rquickjs::TypedArray::<u8>::new(ctx, bytes.to_vec())?.into_value()),
            None => Ok(Value::new_null(ctx)),
        }
    };
    host.set("readBytes", Function::new(ctx.clone(), bytes)?)?;
    let held = files.clone();
    let write = move |name: String, content: Value<'js>, mime_type: Option<String>| -> rquickjs::Result<String> {
        let data = if let Some(text) = content.as_string() {
            text.to_string()?.into_bytes()
        } else if let Ok(array) = rquickjs::TypedArray::<u8>::from_value(content) {
            array.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()
        } else {
            return Ok("write a string or a Uint8Array".into());
        };
        Ok(held.borrow_mut().write(&name, data, mime_type).err().unwrap_or_default())
    };
    host.set("writeFile", Function::new(ctx.clone(), write)?)?;
    Ok(())
}

/// Runs the pending jobs, and answers the code's calls to tools as they
/// finish, until `value` (when a promise) settles or nothing is left to
/// wait for.
fn run_until_settled<'js>(
    ctx: &Ctx<'js>,
    helpers: &Object<'js>,
    value: &Value<'js>,
    host: &dyn ToolHost,
) -> rquickjs::Result<()> {
    let waiting: Function = helpers.get("waiting")?;
    let answer: Function = helpers.get("settle")?;
    let mut jobs = 0;
    loop {
        while jobs < MAX_JOBS && ctx.execute_pending_job() {
            jobs += 1;
        }
        // A job's own exception surfaces through the promise it settles.
        let _ = ctx.catch();
        if value.as_promise().is_some_and(|p| p.state() != PromiseState::Pending) || jobs >= MAX_JOBS {
            return Ok(());
        }
        let calls: Vec<f64> = waiting.call(())?;
        let calls: Vec<u64> = calls.into_iter().map(|id| id as u64).collect();
        if calls.is_empty() {
            return Ok(());
        }
        let (id, outcome) = host.wait_any(&calls);
        let settled = match outcome {
            Ok(result) => answer.call::<_, ()>((id as f64, true, result, "")),
            Err((kind, message)) => answer.call::<_, ()>((id as f64, false, message, kind)),
        };
        if settled.catch(ctx).is_err() {
            // The code broke the prelude's promise (its `then`, say): what
            // it awaited stays pending.
            return Ok(());
        }
    }
}

/// The value a settled promise holds, or what it was rejected with.
fn settle<'js>(ctx: &Ctx<'js>, promise: &Promise<'js>) -> Result<Value<'js>, CaughtError<'js>> {
    match promise.state() {
        PromiseState::Pending => {
            rquickjs::String::from_str(ctx.clone(), "Promise { <pending> }").map(|s| s.into_value()).catch(ctx)
        }
        _ => promise.result::<Value>().unwrap_or_else(|| Ok(Value::new_undefined(ctx.clone()))).catch(ctx),
    }
}

/// The call's outcome when the code threw `caught`.
fn raised<'js>(ctx: &Ctx<'js>, helpers: &Object<'js>, caught: CaughtError<'js>) -> Outcome {
    let error = match caught {
        CaughtError::Exception(exception) => describe_thrown(ctx, helpers, exception.into_value()),
        CaughtError::Value(value) => describe_thrown(ctx, helpers, value),
        CaughtError::Error(error) => Raised {
            kind: "InternalError".into(),
            message: clip(error.to_string()),
            traceback: clip(error.to_string()),
        },
    };
    (serde_json::Value::Null, ResultType::None, Some(error))
}

/// A thrown value as type, message and stack, through the prelude's helper.
fn describe_thrown<'js>(ctx: &Ctx<'js>, helpers: &Object<'js>, thrown: Value<'js>) -> Raised {
    let described = helpers.get::<_, Function>("error").and_then(|f| f.call::<_, Object>((thrown,))).and_then(|o| {
        Ok((o.get::<_, String>("type")?, o.get::<_, String>("message")?, o.get::<_, String>("traceback")?))
    });
    match described {
        Ok((kind, message, traceback)) => Raised { kind, message: clip(message), traceback: clip(traceback) },
        // Describing it failed too (the heap is full, say): say what we can.
        Err(_) => {
            let _ = ctx.catch();
            Raised {
                kind: "InternalError".into(),
                message: "the code threw, and describing the exception failed (out of memory?)".into(),
                traceback: String::new(),
            }
        }
    }
}

/// The result fields from the prelude's `["json", text]`, `["repr", text]` or `["none"]`.
fn result_of(parts: Vec<String>) -> Outcome {
    match parts.as_slice() {
        [kind, text] if kind == "json" && text.len() <= MAX_RESULT => match serde_json::from_str(text) {
            Ok(value) => (value, ResultType::Json, None),
            Err(_) => (serde_json::Value::String(clip(text.clone())), ResultType::Repr, None),
        },
        [_, text] => (serde_json::Value::String(clip(text.clone())), ResultType::Repr, None),
        _ => (serde_json::Value::Null, ResultType::None, None),
    }
}

/// `text`, cut to `MAX_TEXT` characters.
fn clip(text: String) -> String {
    match text.char_indices().nth(MAX_TEXT) {
        None => text,
        Some((end, _)) => {
            let dropped = text[end..].chars().count();
            format!("{}\n[… {dropped} more characters dropped]", &text[..end])
        }
    }
}

/// Whether `name` can be a global variable: an ASCII identifier that is
/// not a word the language reserves, not one of the global object's own
/// constants, and not `__`-prefixed (`__proto__` would replace the global
/// object's prototype).
fn is_identifier(name: &str) -> bool {
    const RESERVED: &str = "break case catch class const continue debugger default delete do else enum export \
        extends false finally for function if import in instanceof new null return super switch this throw true \
        try typeof var void while with yield let static await implements interface package private protected \
        public undefined NaN Infinity globalThis";
    let mut chars = name.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_alphabetic() || first == '_' || first == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        && !name.starts_with("__")
        && !RESERVED.split_whitespace().any(|word| word == name)
}

fn tools() -> Vec<Tool> {
    vec![Tool::new("run_javascript", DESCRIPTION, run_javascript).title("Run JavaScript").read_only().idempotent()]
}

toolmesh_guest::export_tools!(tools);

#[cfg(test)]
mod tests;
