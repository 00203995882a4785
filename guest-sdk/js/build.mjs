// The front half of `tool build` for JavaScript and TypeScript tools, run
// by Node with the pinned toolchain's packages (TypeScript's compiler API
// and the rolldown bundler):
//
// 1. TypeScript projects are type-checked; the first error fails the build.
// 2. Each `tool({ name: "…" }, handler)` call without an `input` schema gets
//    one from the type of the handler's argument (TypeScript types, or JSDoc
//    types in JavaScript); without `output`, one from its return type when
//    that is an object; without `description`, the doc comment above it.
// 3. The entry module, its local modules, npm packages and the SDK (as the
//    module "toolmesh") are bundled into one ES module for componentize-js,
//    the generated schemas set before everything else runs.
//
// Usage: node build.mjs CONFIG.json, where the file holds { entry, sdk,
// types, out, work, toolchain } (absolute paths: the tool's module, the
// SDK and its types, the bundle to write, the build's own directory, and
// the node_modules directory of the pinned packages). Errors are printed as one line,
// `FILE:LINE: message`, and the exit status is 1.

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

// Anything unforeseen is still one line, not a stack trace.
process.on("uncaughtException", (e) => fail(`tool build (JavaScript): internal error: ${e?.message ?? e}`));
process.on("unhandledRejection", (e) => fail(`tool build (JavaScript): internal error: ${e?.message ?? e}`));

// rolldown's own requirement.
const [major, minor] = process.versions.node.split(".").map(Number);
if (!((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22)) {
  fail(`Node.js ${process.versions.node} is too old to build JavaScript tools: 20.19 or 22.12 and newer are needed`);
}

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const project = path.dirname(config.entry);
const require = createRequire(path.join(config.toolchain, "noop.js"));
const ts = require("typescript-compiler-api");

/** A build failure at `node` (or at a file alone). */
class Fault extends Error {
  constructor(message, node) {
    super(message);
    this.node = node;
  }
}

/** `FILE:LINE: ` for `node`, relative to the project. */
function where(node) {
  if (!node) return "";
  const file = node.getSourceFile();
  const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
  return `${path.relative(project, file.fileName)}:${line + 1}: `;
}

function fail(text) {
  process.stderr.write(`${text.replace(/\s*\n\s*/g, " ").trim()}\n`);
  process.exit(1);
}

const options = {
  strict: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  allowJs: true,
  checkJs: false,
  noEmit: true,
  skipLibCheck: true,
  allowImportingTsExtensions: true,
  resolveJsonModule: true,
  esModuleInterop: true,
  lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
  types: [],
  paths: { toolmesh: [config.types] },
};
const program = ts.createProgram([config.entry], options);
const checker = program.getTypeChecker();
const own = program
  .getSourceFiles()
  .filter(
    (f) =>
      !f.isDeclarationFile &&
      !f.fileName.includes("/node_modules/") &&
      f.fileName.startsWith(`${project}/`) &&
      !f.fileName.startsWith(`${config.work}/`),
  );

/** Fails with the first error of `diagnostics`, if any, its message after `kind`. */
function failOnError(diagnostics, kind = "") {
  const first = diagnostics.find((d) => d.category === ts.DiagnosticCategory.Error);
  if (!first) return;
  const message = kind + ts.flattenDiagnosticMessageText(first.messageText, " ");
  if (!first.file) fail(message);
  const { line } = first.file.getLineAndCharacterOfPosition(first.start ?? 0);
  fail(`${path.relative(project, first.file.fileName)}:${line + 1}: ${message}`);
}
failOnError(own.flatMap((f) => program.getSyntacticDiagnostics(f)), "SyntaxError: ");
// TypeScript is type-checked; JavaScript only parsed (its JSDoc types still make schemas).
if (/\.[cm]?tsx?$/.test(config.entry)) {
  failOnError([
    ...program.getOptionsDiagnostics(),
    ...program.getGlobalDiagnostics(),
    ...own.flatMap((f) => program.getSemanticDiagnostics(f)),
  ]);
}

// JSON Schema keywords a property's doc comment may add (`@minimum 1`).
const KEYWORDS = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
  "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems", "examples", "default"];
const NUMERIC = new Set(["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
  "maxLength", "minItems", "maxItems"]);
const MAX_DEPTH = 32;
// Whether the schema being made is a result's (objects left open) or arguments' (closed).
let describingResult = false;

/** The doc comment of `symbol` as a description, if any. */
function documentation(symbol) {
  const text = ts.displayPartsToString(symbol?.getDocumentationComment(checker) ?? []).trim();
  return text || undefined;
}

/** Keywords from the `@minimum`-style tags of `symbol`'s doc comment. */
function keywords(symbol, at) {
  const found = {};
  for (const tag of symbol?.getJsDocTags(checker) ?? []) {
    const text = ts.displayPartsToString(tag.text ?? []).trim();
    if (tag.name === "integer") {
      found.integer = true;
    } else if (KEYWORDS.includes(tag.name)) {
      let value = text;
      if (tag.name !== "pattern" && tag.name !== "format") {
        try {
          value = JSON.parse(text);
        } catch {
          if (NUMERIC.has(tag.name) || tag.name === "uniqueItems") {
            throw new Fault(`@${tag.name} needs a JSON value, not \`${text}\``, at);
          }
        }
      }
      found[tag.name] = value;
    }
  }
  return found;
}

/** Whether `type` is the SDK's `Integer`. */
function isInteger(type) {
  return type.isIntersection() && type.types.some((t) => t.getProperty("__toolmeshInteger"));
}

/** The JSON Schema of `type`, the type of a value at `at` (`what` names it in errors). */
function schemaOf(type, at, what, depth = 0) {
  if (depth > MAX_DEPTH) throw new Fault(`${what}: the type nests too deeply (or refers to itself)`, at);
  const f = type.flags;
  const F = ts.TypeFlags;
  if (isInteger(type)) return { type: "integer" };
  if (type.isIntersection()) {
    if (type.types.every((t) => t.flags & ts.TypeFlags.Object)) return objectSchema(type, at, what, depth);
    throw new Fault(`${what}: the type \`${checker.typeToString(type)}\` has no JSON Schema here`, at);
  }
  if (f & (F.Any | F.Unknown)) return {};
  if (f & F.String) return { type: "string" };
  if (f & F.Number) return { type: "number" };
  if (f & F.Boolean) return { type: "boolean" };
  if (f & F.Null) return { type: "null" };
  if (f & F.StringLiteral) return { type: "string", const: type.value };
  if (f & F.NumberLiteral) return { type: "number", const: type.value };
  if (f & F.BooleanLiteral) return { type: "boolean", const: type.intrinsicName === "true" };
  if (type.isUnion()) return unionSchema(type, at, what, depth);
  if (f & (F.BigInt | F.BigIntLiteral)) throw new Fault(`${what}: a bigint cannot come from JSON; use number or string`, at);
  if (f & (F.Undefined | F.Void | F.Never | F.ESSymbolLike | F.TemplateLiteral)) {
    throw new Fault(`${what}: the type \`${checker.typeToString(type)}\` has no JSON form`, at);
  }
  if (checker.isTupleType(type)) {
    const flags = type.target.elementFlags;
    const schemas = checker.getTypeArguments(type).map((t, i) => schemaOf(t, at, `${what}[${i}]`, depth + 1));
    const variable = flags.findIndex((f) => f & (ts.ElementFlags.Rest | ts.ElementFlags.Variadic));
    const fixed = variable < 0 ? schemas : schemas.slice(0, variable);
    const schema = { type: "array", prefixItems: fixed, minItems: flags.filter((f) => f & ts.ElementFlags.Required).length };
    if (variable < 0) schema.maxItems = fixed.length;
    else if (variable === schemas.length - 1) schema.items = schemas[variable];
    return schema;
  }
  if (checker.isArrayType(type)) {
    const [item] = checker.getTypeArguments(type);
    return { type: "array", items: schemaOf(item, at, `${what}[]`, depth + 1) };
  }
  if (f & F.Object) return objectSchema(type, at, what, depth);
  throw new Fault(`${what}: the type \`${checker.typeToString(type)}\` has no JSON Schema here`, at);
}

function unionSchema(type, at, what, depth) {
  const members = type.types.filter((t) => !(t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void)));
  const literal = (t) => t.flags & (ts.TypeFlags.StringLiteral | ts.TypeFlags.NumberLiteral);
  const nullable = members.some((t) => t.flags & ts.TypeFlags.Null);
  let rest = members.filter((t) => !(t.flags & ts.TypeFlags.Null));
  // `boolean` is `true | false` inside a union.
  const booleans = rest.filter((t) => t.flags & ts.TypeFlags.BooleanLiteral);
  let schemas = [];
  if (booleans.length === 2) {
    rest = rest.filter((t) => !(t.flags & ts.TypeFlags.BooleanLiteral));
    schemas.push({ type: "boolean" });
  }
  if (rest.length && rest.every(literal)) {
    const values = rest.map((t) => t.value);
    const types = [...new Set(values.map((v) => typeof v))];
    schemas.push({ type: types.length === 1 ? types[0] : types, enum: values });
  } else {
    schemas.push(...rest.map((t) => schemaOf(t, at, what, depth + 1)));
  }
  if (nullable) {
    const only = schemas.length === 1 ? schemas[0] : null;
    if (only?.enum) return { ...only, type: [only.type, "null"].flat(), enum: [...only.enum, null] };
    if (only && typeof only.type === "string" && Object.keys(only).length === 1) return { type: [only.type, "null"] };
    schemas.push({ type: "null" });
  }
  if (schemas.length === 0) return {};
  return schemas.length === 1 ? schemas[0] : { anyOf: schemas };
}

function objectSchema(type, at, what, depth) {
  if (type.getCallSignatures().length) throw new Fault(`${what}: a function has no JSON form`, at);
  // Classes and interfaces of the language's own library (Date, Map, URL,
  // typed arrays, …) are not plain data.
  const symbol = type.getSymbol();
  const builtIn = symbol?.declarations?.some((d) => program.isSourceFileDefaultLibrary(d.getSourceFile()));
  if (builtIn && symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
    throw new Fault(`${what}: a ${symbol.getName()} cannot come from JSON; use a string, array or object type`, at);
  }
  const properties = {};
  const required = [];
  for (const property of checker.getPropertiesOfType(type)) {
    const key = property.getName();
    const declared = property.valueDeclaration ?? property.declarations?.[0];
    // Errors point into the project, not into a library's declarations.
    const inProject = declared && own.includes(declared.getSourceFile()) ? declared : at;
    const propertyType = checker.getTypeOfSymbolAtLocation(property, declared ?? at);
    const schema = schemaOf(propertyType, inProject, `${what}.${key}`, depth + 1);
    const { integer, ...extra } = keywords(property, inProject);
    if (integer && schema.type === "number") schema.type = "integer";
    const description = documentation(property);
    properties[key] = { ...schema, ...(description ? { description } : {}), ...extra };
    // `?`, or a type that admits undefined (which JSON leaves out).
    const mayBeAbsent =
      property.flags & ts.SymbolFlags.Optional ||
      (propertyType.isUnion() && propertyType.types.some((t) => t.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void)));
    if (!mayBeAbsent) required.push(key);
  }
  const index = checker.getIndexInfoOfType(type, ts.IndexKind.String);
  const schema = { type: "object", properties };
  if (required.length) schema.required = required;
  if (index) {
    schema.additionalProperties = schemaOf(index.type, at, `${what}[key]`, depth + 1);
  } else if (!describingResult) {
    // Arguments are closed; a result may carry more than its type names.
    schema.additionalProperties = false;
  }
  return schema;
}

/** The value of a literal expression, for defaults (`count = 5`). */
function literalValue(node) {
  if (!node) return undefined;
  if (ts.isStringLiteralLike(node)) return node.text;
  if (ts.isNumericLiteral(node)) return Number(node.text);
  if (node.kind === ts.SyntaxKind.TrueKeyword) return true;
  if (node.kind === ts.SyntaxKind.FalseKeyword) return false;
  if (ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.MinusToken && ts.isNumericLiteral(node.operand)) {
    return -Number(node.operand.text);
  }
  return undefined;
}

/** The function `node` is or names, if the file can see it. */
function functionOf(node) {
  if (ts.isFunctionExpression(node) || ts.isArrowFunction(node)) return node;
  if (ts.isIdentifier(node)) {
    let symbol = checker.getSymbolAtLocation(node);
    // A handler imported from another module of the project.
    if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
    const declaration = symbol?.valueDeclaration;
    if (declaration && ts.isFunctionDeclaration(declaration)) return declaration;
    if (declaration && ts.isVariableDeclaration(declaration) && declaration.initializer) {
      return functionOf(declaration.initializer);
    }
  }
  return undefined;
}

/** The text of the `/** … *\/` comment just above `node`, without its tags. */
function leadingDoc(node) {
  const file = node.getSourceFile();
  const ranges = ts.getLeadingCommentRanges(file.text, node.getFullStart()) ?? [];
  const last = ranges.at(-1);
  if (!last || !file.text.startsWith("/**", last.pos)) return undefined;
  const lines = file.text
    .slice(last.pos + 3, last.end - 2)
    .split("\n")
    .map((l) => l.replace(/^\s*\*\s?/, "").trimEnd());
  const tags = lines.findIndex((l) => l.startsWith("@"));
  const text = (tags < 0 ? lines : lines.slice(0, tags)).join("\n").trim();
  return text || undefined;
}

/** The nearest statement holding `node`. */
function statementOf(node) {
  while (node.parent && !ts.isSourceFile(node.parent) && !ts.isExpressionStatement(node) && !ts.isVariableStatement(node)) {
    node = node.parent;
  }
  return node;
}

/** What the build can say about one `tool(...)` call. */
function describeCall(call) {
  const [definition, handlerNode] = call.arguments;
  if (!definition || !ts.isObjectLiteralExpression(definition)) return undefined;
  const given = new Map();
  for (const p of definition.properties) {
    if ((ts.isPropertyAssignment(p) || ts.isShorthandPropertyAssignment(p)) && p.name && !ts.isComputedPropertyName(p.name)) {
      given.set(p.name.text, p);
    }
  }
  const nameNode = given.get("name");
  const name = nameNode && ts.isPropertyAssignment(nameNode) ? literalValue(nameNode.initializer) : undefined;
  const handler = handlerNode && functionOf(handlerNode);
  if (typeof name !== "string" || !handler) {
    if (!given.has("input")) {
      throw new Fault("a tool with no `input` needs a literal `name` and a function the build can see as its handler", call);
    }
    return undefined;
  }
  const generated = {};
  if (!given.has("input")) {
    const [parameter, ...others] = handler.parameters;
    if (others.length) throw new Fault(`tool \`${name}\`: a handler takes one argument, the arguments object`, handler);
    if (!parameter) {
      generated.input = { type: "object", properties: {}, additionalProperties: false };
    } else {
      const type = checker.getTypeAtLocation(parameter);
      if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) {
        throw new Fault(
          `tool \`${name}\`: its arguments have no type; give \`input\` (a JSON Schema) or a type (TypeScript, or a JSDoc @param)`,
          parameter,
        );
      }
      const schema = schemaOf(type, parameter, name);
      if (schema.type !== "object") throw new Fault(`tool \`${name}\`: its arguments must be an object type`, parameter);
      if (ts.isObjectBindingPattern(parameter.name)) {
        for (const element of parameter.name.elements) {
          const key = (element.propertyName ?? element.name).getText();
          const value = literalValue(element.initializer);
          if (value !== undefined && schema.properties[key] && !("default" in schema.properties[key])) {
            schema.properties[key].default = value;
          }
        }
      }
      generated.input = schema;
    }
  }
  // A result's schema only from a return type the author wrote (a
  // TypeScript annotation or a JSDoc @returns): one inferred from the code
  // may name less than the tool returns.
  if (!given.has("output") && (handler.type || ts.getJSDocReturnType(handler))) {
    const signature = checker.getSignatureFromDeclaration(handler);
    const returned = signature && (checker.getAwaitedType(signature.getReturnType()) ?? signature.getReturnType());
    const object =
      returned &&
      returned.flags & ts.TypeFlags.Object &&
      !checker.isArrayType(returned) &&
      !checker.isTupleType(returned) &&
      returned.getSymbol()?.getName() !== "Image" &&
      !returned.getCallSignatures().length;
    if (object) {
      describingResult = true;
      try {
        generated.output = schemaOf(returned, handler, `${name} (its result)`);
      } catch {
        // A result the build cannot describe is still returned, as JSON.
      } finally {
        describingResult = false;
      }
    }
  }
  if (!given.has("description")) {
    const description =
      leadingDoc(statementOf(call)) ?? (ts.isFunctionDeclaration(handler) ? leadingDoc(handler) : undefined);
    if (description) generated.description = description;
  }
  return [name, generated];
}

/** Whether `callee` is the SDK's `tool` (however it was imported). */
function isSdkTool(callee) {
  const name = ts.isIdentifier(callee) ? callee : ts.isPropertyAccessExpression(callee) ? callee.name : undefined;
  if (!name || name.text !== "tool" && !ts.isIdentifier(callee)) return false;
  let symbol = checker.getSymbolAtLocation(name);
  if (symbol && symbol.flags & ts.SymbolFlags.Alias) symbol = checker.getAliasedSymbol(symbol);
  // The SDK's own `tool`, not another of its functions (`resource`, `prompt`).
  return symbol?.name === "tool" && Boolean(symbol.declarations?.some((d) => d.getSourceFile().fileName === config.types));
}

const generated = Object.create(null);
try {
  for (const file of own) {
    const visit = (node) => {
      if (ts.isCallExpression(node) && isSdkTool(node.expression)) {
        const found = describeCall(node);
        if (found) generated[found[0]] = found[1];
      }
      ts.forEachChild(node, visit);
    };
    visit(file);
  }
} catch (e) {
  if (e instanceof Fault) fail(`${where(e.node)}${e.message}`);
  throw e;
}

const { rolldown } = await import(pathToFileURL(path.join(config.toolchain, "rolldown/dist/index.mjs")).href);
let code;
try {
  // The component's exports are the SDK's `handler` and `server`; the tool's module runs after the SDK.
  const entry = path.join(config.work, "entry.mjs");
  writeFileSync(entry, `export { handler, server } from "toolmesh";\nimport ${JSON.stringify(config.entry)};\n`);
  const bundle = await rolldown({
    input: entry,
    cwd: project,
    platform: "neutral",
    // The project's tsconfig.json is for editors: its `paths` point
    // "toolmesh" at the SDK's types, not at the SDK.
    tsconfig: false,
    external: [/^toolmesh:/, /^wasi:/],
    resolve: { alias: { toolmesh: config.sdk }, mainFields: ["module", "main"], conditionNames: ["import", "default"] },
    // The tool's module runs for what it registers, whatever package.json says.
    treeshake: { moduleSideEffects: true },
    logLevel: "silent",
  });
  const output = await bundle.generate({ format: "esm", codeSplitting: false });
  await bundle.close();
  const chunks = output.output.filter((o) => o.type === "chunk");
  if (chunks.length !== 1) fail(`the bundle came out in ${chunks.length} parts; a tool is one module`);
  code = chunks[0].code;
} catch (e) {
  const error = e.errors?.[0] ?? e;
  const file = error.loc?.file ?? error.id;
  const location = error.loc && file ? `${path.relative(project, file)}:${error.loc.line}: ` : "";
  const message = String(error.message ?? error).split("\n")[0].replace(/^\[[A-Z_]+\]\s*/, "");
  fail(`${location}${message}`);
}
writeFileSync(config.out, `globalThis.__toolmeshGenerated = ${JSON.stringify(generated)};\n${code}`);
process.stdout.write(`${JSON.stringify({ described: Object.keys(generated) })}\n`);
