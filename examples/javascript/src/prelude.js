// Set up once per interpreter, before the caller's first code runs: installs
// `console`, `print` and `readline`, and returns the helpers that turn the
// code's last value and its exception into the call's result. It keeps the
// built-ins it uses from before the code runs, so code that replaces
// JSON.stringify or Array.prototype.map changes what it prints, not how its
// result is reported. The code reaches the host only through `write`, which
// appends to the run's own stdout and stderr (capped on the Rust side), and
// `host`: calls to the catalog's tools, which the node and the gateway
// grant, bound and run as the outer call's caller.
(function (write, limits, host) {
  "use strict";
  const { apply } = Reflect;
  const stringify = JSON.stringify;
  const toString = String;
  const keys = Object.keys;
  const isArray = Array.isArray;
  const { map, join, includes, concat } = Array.prototype;
  const { slice, split, trimEnd, toWellFormed } = String.prototype;
  const MapType = Map, SetType = Set, DateType = Date, ErrorType = Error, PromiseType = Promise;
  const entries = (m) => [...m];
  const isNaNValue = Number.isNaN;

  // A string the host can take: at most `chars` characters, no lone surrogates.
  const sendable = (s, chars) => apply(toWellFormed, apply(slice, s, [0, chars]), []);
  const is = (value, type) => {
    try {
      return value instanceof type;
    } catch (e) {
      return false; // a Proxy whose traps throw
    }
  };

  const MAX_DEPTH = 4;
  const show = (value, depth, seen) => {
    switch (typeof value) {
      case "string":
        return depth === 0 ? value : stringify(value);
      case "undefined":
        return "undefined";
      case "function":
        return `[Function${value.name ? ": " + toString(value.name) : " (anonymous)"}]`;
      case "symbol":
        return apply(Symbol.prototype.toString, value, []);
      case "bigint":
        return depth === 0 ? toString(value) : `${toString(value)}n`;
      case "object":
        break;
      default:
        return toString(value);
    }
    if (value === null) return "null";
    if (is(value, ErrorType)) {
      const stack = value.stack ? toString(value.stack) : "";
      return apply(trimEnd, `${toString(value)}\n${stack}`, []);
    }
    if (apply(includes, seen, [value])) return "[Circular]";
    if (depth >= MAX_DEPTH) return isArray(value) ? "[Array]" : "[Object]";
    const inner = apply(concat, seen, [[value]]);
    const each = (list, f) => apply(join, apply(map, list, [f]), [", "]);
    if (isArray(value)) return `[ ${each(value, (v) => show(v, depth + 1, inner))} ]`;
    if (is(value, MapType)) {
      return `Map(${value.size}) { ${each(entries(value), ([k, v]) => `${show(k, depth + 1, inner)} => ${show(v, depth + 1, inner)}`)} }`;
    }
    if (is(value, SetType)) return `Set(${value.size}) { ${each(entries(value), (v) => show(v, depth + 1, inner))} }`;
    if (is(value, DateType)) return isNaNValue(+value) ? "Invalid Date" : value.toISOString();
    const names = keys(value);
    if (names.length === 0) return "{}";
    return `{ ${each(names, (k) => `${k}: ${show(value[k], depth + 1, inner)}`)} }`;
  };
  const line = (args) => {
    try {
      return apply(join, apply(map, args, [(a) => show(a, 0, [])]), [" "]);
    } catch (e) {
      return "[a value that could not be printed]";
    }
  };
  // Only what can still be kept crosses to the host, with the full length
  // for the count of what was dropped.
  const emit = (stream, args) => {
    const text = line(args);
    write(stream, sendable(text, limits.streamChars), text.length);
  };
  const out = (...args) => emit(1, args);
  const err = (...args) => emit(2, args);
  const counts = new Map();
  globalThis.console = {
    log: out, info: out, debug: out, trace: out, dir: out,
    warn: err, error: err,
    table: (rows) => out(rows),
    assert: (ok, ...args) => { if (!ok) err("Assertion failed:", ...args); },
    count: (label = "default") => { counts.set(label, (counts.get(label) || 0) + 1); out(`${label}: ${counts.get(label)}`); },
  };
  globalThis.print = out;
  let lines = [];
  let next = 0;
  globalThis.readline = () => (next < lines.length ? lines[next++] : null);

  // Calls to other tools: `await tools.call(name, args)`, or through the
  // accessors (`await tools.examples.text.slugify({text})`); promises of
  // calls made together settle as their calls finish, so Promise.all fans out.
  class ToolError extends ErrorType {
    constructor(kind, message, tool) {
      super(message);
      this.name = "ToolError";
      this.kind = kind;
      this.tool = tool;
    }
  }
  const parse = JSON.parse;
  const every = Array.prototype.every;
  const waiting = new Map();
  const valueOf = (result) => {
    if (result.structuredContent !== undefined && result.structuredContent !== null) return result.structuredContent;
    const content = isArray(result.content) ? result.content : [];
    if (apply(every, content, [(c) => c.type === "text"])) return apply(join, apply(map, content, [(c) => c.text]), ["\n"]);
    return content;
  };
  const call = (name, args) => {
    const tool = toString(name);
    let text;
    try {
      text = stringify(args === undefined ? {} : args);
    } catch (e) {
      return PromiseType.reject(e);
    }
    if (typeof text !== "string") return PromiseType.reject(new TypeError(`the arguments of ${tool} must be an object`));
    const [ok, handle, message] = parse(host.start(tool, text));
    if (!ok) return PromiseType.reject(new ToolError(handle, message, tool));
    return new PromiseType((resolve, reject) => waiting.set(handle, { resolve, reject, tool }));
  };
  const search = (query) => {
    const [ok, text, message] = parse(host.describe(query === undefined ? "" : toString(query)));
    if (!ok) throw new ToolError(text, message, "");
    return parse(text);
  };
  const describe = (name) => {
    const wanted = toString(name);
    for (const tool of search(wanted)) if (tool.name === wanted) return tool;
    return null;
  };
  const at = (parts) =>
    new Proxy(function () {}, {
      get(_, key) {
        if (typeof key !== "string" || key === "then") return undefined;
        if (key === "name") return apply(join, parts, ["."]);
        return at(apply(concat, parts, [[key]]));
      },
      apply(_, __, args) {
        return call(apply(join, parts, ["."]), args[0]);
      },
    });
  // Files the caller sent and files the code writes (kept with a session).
  globalThis.files = {
    list: () => parse(host.fileNames()),
    read(name) {
      const text = host.readFile(toString(name));
      if (text == null) throw new ErrorType(`no text file ${stringify(toString(name))} (files.bytes reads any file)`);
      return text;
    },
    bytes(name) {
      const bytes = host.readBytes(toString(name));
      if (bytes == null) throw new ErrorType(`no file ${stringify(toString(name))}`);
      return bytes;
    },
    write(name, content, mimeType) {
      const problem = host.writeFile(toString(name), content, mimeType === undefined ? undefined : toString(mimeType));
      if (problem) throw new ErrorType(problem);
    },
  };

  const own = { call, search, describe, ToolError };
  globalThis.ToolError = ToolError;
  globalThis.tools = new Proxy(own, {
    get(target, key) {
      if (typeof key !== "string" || key === "then") return undefined;
      if (Object.prototype.hasOwnProperty.call(target, key)) return target[key];
      return at([key]);
    },
  });

  const repr = (value) => {
    try {
      return sendable(show(value, 1, []), limits.textChars);
    } catch (e) {
      return "[a value that could not be shown]";
    }
  };
  const text = (get) => {
    try {
      return sendable(toString(get()), limits.textChars);
    } catch (e) {
      return "";
    }
  };
  return {
    // Readies a run: its input (the global `input`, and readline's lines).
    begin(input) {
      lines = apply(split, input, ["\n"]);
      if (lines.length > 0 && lines[lines.length - 1] === "") lines.length -= 1;
      next = 0;
      globalThis.input = input;
      waiting.clear(); // a session's earlier run may have left calls unanswered

    },
    // Handles of the calls not yet answered.
    waiting() {
      return [...waiting.keys()];
    },
    // Settles the promise of call `handle`: with its value (`payload`, the
    // MCP result as JSON text) or a ToolError of `kind`.
    settle(handle, ok, payload, kind) {
      const wait = waiting.get(handle);
      if (wait === undefined) return;
      waiting.delete(handle);
      if (!ok) return wait.reject(new ToolError(kind, payload, wait.tool));
      try {
        wait.resolve(valueOf(parse(payload)));
      } catch (e) {
        wait.reject(e);
      }
    },
    // ["json", text] when the value is JSON (and small enough), ["repr", text]
    // otherwise, ["none"] for undefined.
    result(value) {
      if (value === undefined) return ["none"];
      try {
        const json = stringify(value, (key, v) => {
          // JSON would turn these into {} and lose what they hold.
          if (is(v, MapType) || is(v, SetType)) throw new TypeError("not JSON");
          return v;
        });
        if (json !== undefined && json.length <= limits.resultChars) return ["json", json];
      } catch (e) {
        // cycles, BigInt, Map, Set: shown instead
      }
      return ["repr", repr(value)];
    },
    // The thrown value as { type, message, traceback }.
    error(thrown) {
      if (is(thrown, ErrorType)) {
        const name = text(() => thrown.name), message = text(() => thrown.message);
        const stack = text(() => thrown.stack || "");
        return { type: name, message, traceback: sendable(apply(trimEnd, `${name}: ${message}\n${stack}`, []), limits.textChars) };
      }
      const shown = repr(thrown);
      return { type: "thrown value", message: shown, traceback: `Uncaught ${shown}` };
    },
  };
})
