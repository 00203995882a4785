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
// A handler returns a string (text), an `Image`, `Audio`, an `Embedded`
// resource, a `Link`, an array of these, nothing, or anything else as JSON
// (structured content when it is an object); it may be async.
// Throw `ToolError` to fail, `InvalidArguments` for bad arguments.
//
// `resource({ uri }, handler)` and `prompt({ name, arguments }, handler)`
// offer resources (a `{variable}` in the URI makes a template) and prompts;
// `ask.elicit`, `ask.sample` and `ask.roots` ask the user, the client's
// model or its roots (a question not answered yet throws `Pending`: let it
// end the call, which runs again with the answer); `resourceUpdated(uri)`
// tells clients subscribed to one of the package's resources that it
// changed. `task: "optional"` (or `"required"`) in a tool's definition lets
// clients run its calls as tasks.

import { log as hostLog } from "toolmesh:tool/log@0.1.0";
import { report } from "toolmesh:tool/progress@0.1.0";
import { request as askRequest } from "toolmesh:tool/ask@0.1.0";
import { updated } from "toolmesh:tool/resource-updates@0.1.0";

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
  const { name, title, readOnly, destructive, idempotent, openWorld, task } = definition;
  // What `tool build` found in the types and doc comments, where the definition is silent.
  const found = (globalThis.__toolmeshGenerated ?? {})[name] ?? {};
  const { description = found.description, input = found.input, output = found.output } = definition;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new Error(`tool name ${JSON.stringify(name)} is not 1-64 of [A-Za-z0-9_.-]`);
  }
  if (TOOLS.has(name)) throw new Error(`a tool named \`${name}\` is already defined`);
  if (typeof handler !== "function") throw new Error(`tool \`${name}\`: its handler is not a function`);
  if (task !== undefined && task !== "optional" && task !== "required") {
    throw new Error(`tool \`${name}\`: task is "optional" or "required", not ${JSON.stringify(task)}`);
  }
  const schema = inputSchema(input);
  // The gateway reads it; the handler never sees it.
  if (task !== undefined) schema["x-toolmesh-task"] = task;
  TOOLS.set(name, {
    name,
    description: description ?? name,
    input: schema,
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

/**
 * Tells the clients subscribed to this package's resource `uri` (as the
 * package offers it: a `resource`'s URI, or one its template matches) that
 * it changed, so they read it again. A call may report 32 URIs.
 */
export function resourceUpdated(uri) {
  updated(String(uri));
}

/** An audio result: encoded bytes and their media type. */
export class Audio {
  constructor(data, mimeType = "audio/wav") {
    this.data = data;
    this.mimeType = mimeType;
  }
}

/** A resource's contents (text or bytes), embedded in a result or a prompt. */
export class Embedded {
  constructor(uri, contents, mimeType) {
    this.uri = uri;
    this.contents = contents;
    this.mimeType = mimeType;
  }
}

/** A link to a resource the client may read. */
export class Link {
  constructor(uri, name, description, mimeType) {
    this.uri = uri;
    this.name = name;
    this.description = description;
    this.mimeType = mimeType;
  }
}

function body(contents) {
  return typeof contents === "string" ? { tag: "text", val: contents } : { tag: "blob", val: new Uint8Array(contents) };
}

/** One value as a content item of the `server` interface. */
function item(value) {
  if (typeof value === "string") return { tag: "text", val: value };
  if (value instanceof Image) return { tag: "image", val: { data: new Uint8Array(value.data), mimeType: value.mimeType } };
  if (value instanceof Audio) return { tag: "audio", val: { data: new Uint8Array(value.data), mimeType: value.mimeType } };
  if (value instanceof Embedded) {
    return { tag: "resource", val: { uri: value.uri, mimeType: value.mimeType, body: body(value.contents) } };
  }
  if (value instanceof Link) {
    const { uri, name, description, mimeType } = value;
    return { tag: "resource-link", val: { uri, name, title: undefined, description, mimeType, size: undefined } };
  }
  return { tag: "json", val: JSON.stringify(value) };
}

const RICH = [Image, Audio, Embedded, Link];

/** A handler's result as content items. */
function items(result) {
  if (result === undefined || result === null) return [];
  if (Array.isArray(result) && result.length && result.every((r) => typeof r === "string" || RICH.some((k) => r instanceof k))) {
    return result.map(item);
  }
  return [item(result)];
}

/** A handler's result as the `handler` interface carries it (text, JSON, images). */
function content(result) {
  return items(result).map((i) =>
    ["text", "json", "image"].includes(i.tag) ? i : { tag: "text", val: `[${i.tag} ${i.val.uri ?? i.val.mimeType}]` },
  );
}

async function run(name, argumentsText) {
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
    return await found.handler(args);
  } catch (e) {
    if (e instanceof InvalidArguments) throw { tag: "invalid-arguments", val: e.message };
    if (e instanceof ToolError) throw { tag: "failed", val: e.message };
    throw { tag: "failed", val: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

const RESOURCES = new Map();
const PROMPTS = new Map();

/** Offers the resource at `definition.uri` (a `{variable}` in it makes a template), made by `handler(variables)`. */
export function resource(definition, handler) {
  const { uri, name = uri, description, mimeType } = definition;
  if (typeof uri !== "string" || !uri.includes(":")) throw new Error(`resource URI ${JSON.stringify(uri)} is not absolute`);
  RESOURCES.set(uri, { uri, name, description, mimeType, templated: uri.includes("{"), handler });
}

/** Offers the prompt `definition.name`, whose messages `handler(arguments)` makes. */
export function prompt(definition, handler) {
  const { name, description, arguments: parameters = {} } = definition;
  if (typeof name !== "string" || !NAME.test(name)) throw new Error(`prompt name ${JSON.stringify(name)} is not 1-64 of [A-Za-z0-9_.-]`);
  const list = Object.entries(parameters).map(([n, p]) => ({ name: n, description: p.description, required: p.required !== false }));
  PROMPTS.set(name, { name, description, arguments: list, handler });
}

/** The error of an offer's handler. */
function offerError(e) {
  if (e instanceof NotFound) return { tag: "not-found", val: e.message };
  if (e instanceof InvalidArguments) return { tag: "invalid-arguments", val: e.message };
  return { tag: "failed", val: e instanceof Error ? e.message : String(e) };
}

/** No such resource (or value of a template's variable). */
export class NotFound extends Error {}

/** A question not answered yet: let the call end; it runs again with the answer. */
export class Pending extends ToolError {}

/** The client cannot answer this kind of question. */
export class Unsupported extends ToolError {}

const KINDS = { string: "string", number: "number", integer: "integer", boolean: "boolean" };

/** Asking back: the user (a form), the client's model, the client's roots. */
export const ask = {
  /** Asks the client `method` with `params`; `key` names the question within the call. */
  request(key, method, params) {
    try {
      return JSON.parse(askRequest(key, method, JSON.stringify(params)));
    } catch (e) {
      const error = e && e.payload !== undefined ? e.payload : e;
      if (error && error.tag === "pending") throw new Pending("waiting for the client's answer");
      if (error && error.tag === "unsupported") throw new Unsupported(error.val);
      if (error && error.tag === "refused") throw new ToolError(error.val);
      throw e;
    }
  },
  /** A form for the user: `fields` maps names to "string", "number", "integer", "boolean" or a JSON Schema. The values, or undefined when declined. */
  elicit(key, message, fields) {
    const properties = Object.fromEntries(
      Object.entries(fields).map(([n, k]) => [n, typeof k === "string" ? { type: KINDS[k] ?? "string" } : k]),
    );
    const answer = ask.request(key, "elicitation/create", { message, requestedSchema: { type: "object", properties } });
    return answer.action === "accept" ? answer.content ?? {} : undefined;
  },
  /** The text of the client's model's answer to `text`. */
  sample(key, text, maxTokens = 500) {
    const answer = ask.request(key, "sampling/createMessage", {
      messages: [{ role: "user", content: { type: "text", text } }],
      maxTokens,
    });
    const blocks = Array.isArray(answer.content) ? answer.content : [answer.content ?? {}];
    return blocks.map((b) => b.text ?? "").join("");
  },
  /** The client's roots: `{ uri, name }` each. */
  roots(key) {
    return ask.request(key, "roots/list", {}).roots ?? [];
  },
};

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
    return content(await run(name, argumentsText));
  },
};

/** The `server` export: every kind of content, resources and prompts. */
export const server = {
  async call(name, argumentsText) {
    return items(await run(name, argumentsText));
  },
  describeOffer() {
    const all = [...RESOURCES.values()];
    return {
      resources: all
        .filter((r) => !r.templated)
        .map(({ uri, name, description, mimeType }) => ({ uri, name, title: undefined, description, mimeType, size: undefined })),
      templates: all
        .filter((r) => r.templated)
        .map(({ uri, name, description, mimeType }) => ({ uriTemplate: uri, name, title: undefined, description, mimeType })),
      prompts: [...PROMPTS.values()].map(({ name, description, arguments: args }) => ({ name, title: undefined, description, arguments: args })),
    };
  },
  async read(uri, template, variables) {
    const found = RESOURCES.get(template ?? uri);
    if (!found || found.templated !== (template !== undefined && template !== null)) {
      throw { tag: "not-found", val: `no resource \`${uri}\`` };
    }
    try {
      const value = await found.handler(Object.fromEntries(variables));
      const contents = value instanceof Embedded ? value.contents : value;
      return [{ uri, mimeType: (value instanceof Embedded && value.mimeType) || found.mimeType, body: body(contents) }];
    } catch (e) {
      throw offerError(e);
    }
  },
  async getPrompt(name, args) {
    const found = PROMPTS.get(name);
    if (!found) throw { tag: "not-found", val: `no prompt \`${name}\`` };
    const given = Object.fromEntries(args);
    const missing = found.arguments.find((a) => a.required && !(a.name in given));
    if (missing) throw { tag: "invalid-arguments", val: `prompt \`${name}\` needs argument \`${missing.name}\`` };
    let value;
    try {
      value = await found.handler(given);
    } catch (e) {
      throw offerError(e);
    }
    const messages = (Array.isArray(value) ? value : [value]).map((m) =>
      m && typeof m === "object" && "content" in m && !RICH.some((k) => m instanceof k)
        ? { role: m.role === "assistant" ? "assistant" : "user", content: item(m.content) }
        : { role: "user", content: item(m) },
    );
    return { description: found.description, messages };
  },
};
