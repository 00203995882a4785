// Types of the toolmesh SDK for JavaScript and TypeScript tools (the
// module "toolmesh"; `tool build` type-checks TypeScript tools with them).

/** A JSON Schema (draft 2020-12) object. */
export type JsonSchema = { [keyword: string]: unknown };

/** What a tool is: its name, what it is for, and the shapes it takes and gives. */
export interface ToolDefinition {
  /** The tool's name: 1-64 of `A-Z a-z 0-9 _ . -`. */
  name: string;
  /** What the tool is for (default: the doc comment above the `tool(...)` call). */
  description?: string;
  /**
   * The JSON Schema of the arguments object, or just its properties (each
   * required unless it has a `default` or `optional: true`). Default: from
   * the type of the handler's argument.
   */
  input?: JsonSchema | { [property: string]: JsonSchema & { optional?: boolean } };
  /**
   * The JSON Schema of the structured result (default: from the return type
   * written on the handler, a TypeScript annotation or a JSDoc @returns, when
   * it is an object type).
   */
  output?: JsonSchema;
  /** A human-friendly title. */
  title?: string;
  /** The tool changes nothing outside itself. */
  readOnly?: boolean;
  /** The tool may destroy or overwrite data. */
  destructive?: boolean;
  /** Calling it again with the same arguments changes nothing more. */
  idempotent?: boolean;
  /** The tool reaches the open world (the network). */
  openWorld?: boolean;
  /**
   * Whether clients may run its calls as tasks (`"optional"`), or must
   * (`"required"`): for long calls a client polls for.
   */
  task?: "optional" | "required";
}

/** A whole number: its schema says `"type": "integer"`. */
export type Integer = number & { readonly __toolmeshInteger?: never };

/**
 * Makes `handler` the tool `definition` describes. The handler gets the
 * arguments object and returns a string (text), an `Image`, nothing, or
 * anything else as JSON (structured content when it is an object); it may
 * be async.
 */
export function tool<Args = any, Result = unknown>(
  definition: ToolDefinition,
  handler: (args: Args) => Result | Promise<Result>,
): void;

/** The tool ran but could not do its job. */
export class ToolError extends Error {}

/** The arguments do not fit the tool; the message names the field. */
export class InvalidArguments extends ToolError {}

/** An image result: encoded bytes and their media type. */
export class Image {
  constructor(data: Uint8Array | ArrayLike<number>, mimeType?: string);
  data: Uint8Array | ArrayLike<number>;
  mimeType: string;
}

/** Records a log line with the call. */
export function log(message: unknown, level?: "trace" | "debug" | "info" | "warn" | "error"): void;

/** Tells the caller that `done` units of `total` are finished. */
export function progress(done: number, total?: number, message?: string): void;

/**
 * Tells the clients subscribed to this package's resource `uri` (as the
 * package offers it: a `resource`'s URI, or one its template matches) that
 * it changed, so they read it again. A call may report 32 URIs.
 */
export function resourceUpdated(uri: string): void;

/** An audio result: encoded bytes and their media type. */
export class Audio {
  constructor(data: Uint8Array | ArrayLike<number>, mimeType?: string);
  data: Uint8Array | ArrayLike<number>;
  mimeType: string;
}

/** A resource's contents (text or bytes), embedded in a result or a prompt message. */
export class Embedded {
  constructor(uri: string, contents: string | Uint8Array, mimeType?: string);
  uri: string;
  contents: string | Uint8Array;
  mimeType?: string;
}

/** A link to a resource the client may read. */
export class Link {
  constructor(uri: string, name: string, description?: string, mimeType?: string);
  uri: string;
  name: string;
  description?: string;
  mimeType?: string;
}

/** No such resource (or value of a template's variable). */
export class NotFound extends Error {}

/** A question not answered yet: let it end the call, which runs again with the answer. */
export class Pending extends ToolError {}

/** The client cannot answer this kind of question. */
export class Unsupported extends ToolError {}

/** Offers a resource (`{variable}` in the URI makes a template, its values given to the handler). */
export function resource(
  definition: { uri: string; name?: string; description?: string; mimeType?: string },
  handler: (variables: { [name: string]: string }) => string | Uint8Array | Embedded | Promise<string | Uint8Array | Embedded>,
): void;

/** One message of a prompt. */
export type PromptMessage = { role?: "user" | "assistant"; content: unknown } | string | Image | Audio | Embedded | Link;

/** Offers a prompt; its handler gets the arguments and returns its messages. */
export function prompt(
  definition: { name: string; description?: string; arguments?: { [name: string]: { description?: string; required?: boolean } } },
  handler: (args: { [name: string]: string }) => PromptMessage | PromptMessage[] | Promise<PromptMessage | PromptMessage[]>,
): void;

/** Asking back: the user (a form), the client's model, the client's roots. */
export const ask: {
  request(key: string, method: string, params: object): any;
  elicit(key: string, message: string, fields: { [name: string]: "string" | "number" | "integer" | "boolean" | JsonSchema }): { [name: string]: unknown } | undefined;
  sample(key: string, text: string, maxTokens?: number): string;
  roots(key: string): { uri: string; name?: string }[];
};
