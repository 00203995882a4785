// Set up before the caller's code runs, in the same fresh context: installs
// `console`, `print` and `readline`, and returns the helpers that turn the
// code's last value and its exception into the call's result. It keeps the
// built-ins it uses from before the code runs, so code that replaces
// JSON.stringify or Array.prototype.map changes what it prints, not how its
// result is reported. Nothing here gives the code a way to the host: `write`
// only appends to the run's own stdout and stderr, capped on the Rust side.
(function (write, input, limits) {
  "use strict";
  const { apply } = Reflect;
  const stringify = JSON.stringify;
  const toString = String;
  const keys = Object.keys;
  const isArray = Array.isArray;
  const { map, join, includes, concat } = Array.prototype;
  const { slice, split, trimEnd, toWellFormed } = String.prototype;
  const MapType = Map, SetType = Set, DateType = Date, ErrorType = Error;
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
  const lines = apply(split, input, ["\n"]);
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.length -= 1;
  let next = 0;
  globalThis.readline = () => (next < lines.length ? lines[next++] : null);

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
