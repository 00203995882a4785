// toolmesh SDK for JavaScript tools, built into a component of the
// toolmesh world by componentize-js (`tool build`).
//
//   import { tool, ToolError } from "toolmesh";
//
//   tool({
//     name: "slugify",
//     description: "A URL-safe slug of a title.",
//     input: { title: { type: "string", description: "The title." } },
//     readOnly: true,
//   }, ({ title }) => title.toLowerCase().replace(/[^a-z0-9]+/g, "-"));
//
// `input` is the JSON Schema of the arguments object, or just its
// properties (each required unless it has a `default` or `optional: true`).
// Without it, `tool build` makes one from the type of the handler's
// argument (TypeScript, or a JSDoc @param); `output` and `description`
// likewise come from the return type written on the handler and the doc
// comment above the call.
// A handler returns a string (text), an `Image`, nothing, or anything else
// as JSON (structured content when it is an object); it may be async.
// Throw `ToolError` to fail, `InvalidArguments` for bad arguments.

import { log as hostLog } from "toolmesh:tool/log@0.1.0";
import { report } from "toolmesh:tool/progress@0.1.0";

const TOOLS = new Map();
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** The tool ran but could not do its job. */
export class ToolError extends Error {}

/** The arguments do not fit the tool; the message names the field. */
export class InvalidArguments extends ToolError {}

/** An image result: encoded bytes and their media type. */
export class Image {
  constructor(data, mimeType = "image/png") {
    this.data = data;
    this.mimeType = mimeType;
  }
}

function inputSchema(input) {
  if (input === undefined) return { type: "object", properties: {}, additionalProperties: false };
  if (input.type === "object") return input;
  const properties = {};
  const required = [];
  for (const [name, schema] of Object.entries(input)) {
    const { optional, ...rest } = schema;
    properties[name] = rest;
    if (!optional && !("default" in rest)) required.push(name);
  }
  const schema = { type: "object", properties, additionalProperties: false };
  if (required.length) schema.required = required;
  return schema;
}

/** Makes `handler` the tool `definition` describes. */
export function tool(definition, handler) {
  const { name, title, readOnly, destructive, idempotent, openWorld } = definition;
  // What `tool build` found in the types and doc comments, where the definition is silent.
  const found = (globalThis.__toolmeshGenerated ?? {})[name] ?? {};
  const { description = found.description, input = found.input, output = found.output } = definition;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new Error(`tool name ${JSON.stringify(name)} is not 1-64 of [A-Za-z0-9_.-]`);
  }
  if (TOOLS.has(name)) throw new Error(`a tool named \`${name}\` is already defined`);
  if (typeof handler !== "function") throw new Error(`tool \`${name}\`: its handler is not a function`);
  TOOLS.set(name, {
    name,
    description: description ?? name,
    input: inputSchema(input),
    output,
    annotations: { title, readOnly, destructive, idempotent, openWorld },
    handler,
  });
}

/** Records a log line with the call. */
export function log(message, level = "info") {
  const levels = ["trace", "debug", "info", "warn", "error"];
  hostLog(levels.includes(level) ? level : "info", String(message));
}

/** Tells the caller that `done` units of `total` are finished. */
export function progress(done, total, message) {
  report(done, total, message);
}

function content(result) {
  if (result === undefined || result === null) return [];
  if (typeof result === "string") return [{ tag: "text", val: result }];
  if (result instanceof Image) {
    return [{ tag: "image", val: { data: new Uint8Array(result.data), mimeType: result.mimeType } }];
  }
  return [{ tag: "json", val: JSON.stringify(result) }];
}

/** The toolmesh world's `handler` export, made from the tools defined. */
export const handler = {
  describe() {
    return [...TOOLS.values()].map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: JSON.stringify(t.input),
      outputSchema: t.output === undefined ? undefined : JSON.stringify(t.output),
      annotations: t.annotations,
    }));
  },
  async call(name, argumentsText) {
    const found = TOOLS.get(name);
    if (!found) throw { tag: "invalid-arguments", val: `no tool named \`${name}\`` };
    let args;
    try {
      args = argumentsText.trim() ? JSON.parse(argumentsText) : {};
    } catch (e) {
      throw { tag: "invalid-arguments", val: `the arguments are not JSON: ${e.message}` };
    }
    if (typeof args !== "object" || args === null || Array.isArray(args)) {
      throw { tag: "invalid-arguments", val: "the arguments must be a JSON object" };
    }
    for (const field of found.input.required ?? []) {
      if (!(field in args)) throw { tag: "invalid-arguments", val: `\`${field}\` is missing` };
    }
    try {
      return content(await found.handler(args));
    } catch (e) {
      if (e instanceof InvalidArguments) throw { tag: "invalid-arguments", val: e.message };
      if (e instanceof ToolError) throw { tag: "failed", val: e.message };
      throw { tag: "failed", val: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
    }
  },
};
