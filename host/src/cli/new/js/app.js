// {{name}}: a toolmesh tool in JavaScript.
//
// Each tool(...) is one MCP tool: `input` is the JSON Schema of its
// arguments (or just their properties), the handler's return value its
// result. Build it with `tool build`.

import { tool, ToolError } from "toolmesh";

tool(
  {
    name: "csv_to_json",
    description: "Reads CSV text (with a header row) into a list of objects, one per row.",
    input: {
      csv: { type: "string", description: "The CSV text; its first row names the columns." },
      delimiter: { type: "string", default: ",", description: "The character between fields." },
    },
    output: {
      type: "object",
      properties: {
        columns: { type: "array", items: { type: "string" } },
        rows: { type: "array", items: { type: "object" } },
      },
      required: ["columns", "rows"],
    },
    readOnly: true,
    idempotent: true,
  },
  ({ csv, delimiter = "," }) => {
    if (delimiter.length !== 1) throw new ToolError("`delimiter` must be one character");
    const [header, ...lines] = parse(csv, delimiter).filter((row) => row.some((field) => field !== ""));
    if (!header) throw new ToolError("the CSV has no header row");
    const rows = lines.map((fields) => Object.fromEntries(header.map((name, i) => [name, fields[i] ?? ""])));
    return { columns: header, rows };
  },
);

/** Rows of fields; quoted fields may hold the delimiter, quotes ("") and newlines. */
function parse(text, delimiter) {
  const rows = [[]];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"') {
      quoted = true;
    } else if (c === delimiter) {
      rows[rows.length - 1].push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      rows[rows.length - 1].push(field);
      field = "";
      rows.push([]);
    } else {
      field += c;
    }
  }
  rows[rows.length - 1].push(field);
  return rows;
}
