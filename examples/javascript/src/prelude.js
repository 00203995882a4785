// Set up before the caller's code runs, in the same fresh context: installs
// `console`, `print` and `readline`, and returns the helpers that turn the
// code's last value and its exception into the call's result. Nothing here
// keeps a reference the caller's code could use to reach the host.
(function (write, input) {
  "use strict";
  const MAX_DEPTH = 4;
  const show = (value, depth, seen) => {
    switch (typeof value) {
      case "string":
        return depth === 0 ? value : JSON.stringify(value);
      case "undefined":
        return "undefined";
      case "function":
        return `[Function${value.name ? ": " + value.name : " (anonymous)"}]`;
      case "symbol":
      case "bigint":
        return depth === 0 || typeof value === "symbol" ? String(value) : `${value}n`;
      case "object":
        break;
      default:
        return String(value);
    }
    if (value === null) return "null";
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}`.trimEnd() : String(value);
    if (seen.includes(value)) return "[Circular]";
    if (depth >= MAX_DEPTH) return Array.isArray(value) ? "[Array]" : "[Object]";
    const inner = seen.concat([value]);
    if (Array.isArray(value)) return `[ ${value.map((v) => show(v, depth + 1, inner)).join(", ")} ]`;
    if (value instanceof Map) {
      return `Map(${value.size}) { ${[...value].map(([k, v]) => `${show(k, depth + 1, inner)} => ${show(v, depth + 1, inner)}`).join(", ")} }`;
    }
    if (value instanceof Set) return `Set(${value.size}) { ${[...value].map((v) => show(v, depth + 1, inner)).join(", ")} }`;
    if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
    const keys = Object.keys(value);
    if (keys.length === 0) return "{}";
    return `{ ${keys.map((k) => `${k}: ${show(value[k], depth + 1, inner)}`).join(", ")} }`;
  };
  const line = (args) => {
    try {
      return args.map((a) => show(a, 0, [])).join(" ");
    } catch (e) {
      return "[a value that could not be printed]";
    }
  };
  const out = (...args) => write(1, line(args));
  const err = (...args) => write(2, line(args));
  const counts = new Map();
  globalThis.console = {
    log: out, info: out, debug: out, trace: out, dir: out,
    warn: err, error: err,
    table: (rows) => out(rows),
    assert: (ok, ...args) => { if (!ok) err("Assertion failed:", ...args); },
    count: (label = "default") => { counts.set(label, (counts.get(label) || 0) + 1); out(`${label}: ${counts.get(label)}`); },
  };
  globalThis.print = out;
  const lines = input.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  let next = 0;
  globalThis.readline = () => (next < lines.length ? lines[next++] : null);

  const repr = (value) => {
    try {
      return show(value, 1, []);
    } catch (e) {
      return "[a value that could not be shown]";
    }
  };
  return {
    // ["json", text] when the value is JSON, ["repr", text] otherwise, ["none"] for undefined.
    result(value) {
      if (value === undefined) return ["none"];
      try {
        const text = JSON.stringify(value, (key, v) => {
          // JSON would turn these into {} and lose what they hold.
          if (v instanceof Map || v instanceof Set) throw new TypeError("not JSON");
          return v;
        });
        if (text !== undefined) return ["json", text];
      } catch (e) {
        // cycles, BigInt, Map, Set: shown instead
      }
      return ["repr", repr(value)];
    },
    // The thrown value as { type, message, traceback }.
    error(thrown) {
      if (thrown instanceof Error) {
        let name = "Error", message = "", stack = "";
        try { name = String(thrown.name); } catch (e) {}
        try { message = String(thrown.message); } catch (e) {}
        try { stack = String(thrown.stack || ""); } catch (e) {}
        return { type: name, message, traceback: `${name}: ${message}\n${stack}`.trimEnd() };
      }
      const text = repr(thrown);
      return { type: "thrown value", message: text, traceback: `Uncaught ${text}` };
    },
  };
})
