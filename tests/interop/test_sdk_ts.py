"""TypeScript tools, and schemas made from types: `tool new --lang ts`,
`tool build` (type-checked, bundled with rolldown, built by
componentize-js), `tool publish` into `tool serve` and a call with the
official MCP client; every supported type form round-tripped into JSON
Schema; JSDoc types in JavaScript; local modules and an npm package
bundled; bad projects answered in one line naming the file and line; the
Python and TypeScript examples as `tool serve` publishes them.
"""

import json

import mcp
import pytest
from conftest import COMPONENTS, build_new_tool, publish_to, start_gateway, tool_project, until_listed
from conftest import run_tool as tool


@pytest.fixture
def anyio_backend():
    return "asyncio"


def build(tmp_path, files):
    """Builds a project of `files`; returns the component and its tools by name."""
    dir = tool_project(tmp_path, files)
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()
    described = json.loads(tool("inspect", component, "--json").stdout)["tools"]
    return component, {t["name"]: t for t in described}


def run(component, name, arguments):
    done = tool("run", component, name, "--json", "-a", json.dumps(arguments))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.anyio
async def test_a_new_ts_tool_is_built_published_and_called_over_mcp(tmp_path):
    component, built = build_new_tool(tmp_path, "words", "ts")
    assert "1 tool (word_stats)" in built
    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/words", "0.1.0")
        async with mcp.Client(f"{base}/mcp") as client:
            tools = await until_listed(client, "demo.words.word_stats")
            listed = tools["demo.words.word_stats"]
            assert listed.description == "Counts the words of a text and lists the most frequent."
            top = listed.input_schema["properties"]["top"]
            assert top == {"type": "integer", "minimum": 1, "maximum": 100, "default": 5,
                           "description": "How many of the most frequent words to list."}, top
            assert listed.input_schema["required"] == ["text"]
            assert listed.output_schema["required"] == ["words", "distinct", "frequent"]
            result = await client.call_tool("demo.words.word_stats", {"text": "The cat and the hat", "top": 1})
            assert result.structured_content == {"words": 5, "distinct": 4, "frequent": [{"word": "the", "count": 2}]}
            # The schema made from the types is enforced before the tool runs.
            with pytest.raises(mcp.MCPError, match="/top: 0 is less than the minimum of 1"):
                await client.call_tool("demo.words.word_stats", {"text": "x", "top": 0})


def test_every_supported_type_form_becomes_a_schema(tmp_path):
    component, tools = build(tmp_path, {"app.ts": '''
        import { tool, type Integer } from "toolmesh";

        type Unit = "m" | "km";
        interface Point { x: number; y: number }

        interface Args {
          /** Free text. @minLength 1 @maxLength 80 @pattern ^[a-z ]+$ */
          text: string;
          n: Integer;
          ratio?: number;
          flag: boolean;
          unit: Unit;
          level: 1 | 2 | 3;
          maybe: string | null;
          points: Point[];
          pair: [string, number];
          tags: Record<string, number>;
          either: Point | string;
          /** @integer @minimum 0 */
          count?: number;
          anything: unknown;
        }

        /** Echoes what it got. */
        tool({ name: "echo" }, (args: Args) => args);
    '''})
    schema = tools["echo"]["input_schema"]
    p = schema["properties"]
    assert p["text"] == {"type": "string", "description": "Free text.", "minLength": 1, "maxLength": 80,
                         "pattern": "^[a-z ]+$"}, p["text"]
    assert p["n"] == {"type": "integer"} and p["ratio"] == {"type": "number"} and p["flag"] == {"type": "boolean"}
    assert p["unit"] == {"type": "string", "enum": ["m", "km"]}
    assert p["level"] == {"type": "number", "enum": [1, 2, 3]}
    assert p["maybe"] == {"type": ["string", "null"]}
    point = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
             "required": ["x", "y"], "additionalProperties": False}
    assert p["points"] == {"type": "array", "items": point}
    assert p["pair"] == {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}],
                         "minItems": 2, "maxItems": 2}
    assert p["tags"] == {"type": "object", "properties": {}, "additionalProperties": {"type": "number"}}
    assert p["either"] == {"anyOf": [{"type": "string"}, point]} or p["either"] == {"anyOf": [point, {"type": "string"}]}
    assert p["count"] == {"type": "integer", "minimum": 0}
    assert p["anything"] == {}
    assert set(schema["required"]) == {"text", "n", "flag", "unit", "level", "maybe", "points", "pair", "tags",
                                       "either", "anything"}
    assert schema["additionalProperties"] is False
    assert tools["echo"]["description"] == "Echoes what it got."
    # Values of every form reach the handler as they were sent.
    value = {"text": "a b", "n": 3, "flag": True, "unit": "km", "level": 2, "maybe": None,
             "points": [{"x": 1, "y": 2.5}], "pair": ["a", 1], "tags": {"k": 1}, "either": "s", "anything": [1]}
    assert run(component, "echo", value)["structuredContent"] == value


def test_the_build_follows_imports_aliases_and_composed_types(tmp_path):
    component, tools = build(tmp_path, {
        "lib.ts": '''
            export interface Base {
              /** The id. */
              id: string;
            }
            export interface Found {
              id: string;
              note: string | null;
            }
            /** Looks an id up. */
            export function lookup({ id, note }: Base & { note: string | undefined }): Found {
              const found = { id, note: note ?? null, extra: 1 };
              return found;
            }
        ''',
        "app.ts": '''
            import { tool as define } from "toolmesh";
            import { lookup } from "./lib.ts";

            // Not the SDK's: the build leaves it alone.
            function tool(name: string): string {
              return name;
            }
            tool("ignored");

            define({ name: "lookup" }, lookup);

            /** Counts a pair's parts. */
            define({ name: "pair" }, ({ p }: { p: [string, number?] }) => p.length);
        ''',
    })
    lookup = tools["lookup"]
    assert lookup["description"] == "Looks an id up."
    assert lookup["input_schema"]["properties"]["id"] == {"type": "string", "description": "The id."}
    # `note: string | undefined` may be left out of JSON, so it is not required.
    assert lookup["input_schema"]["required"] == ["id"] and lookup["input_schema"]["additionalProperties"] is False
    # A result's schema comes from the written return type and stays open:
    # the tool returns more than `Found` names, and the result is accepted.
    assert lookup["output_schema"]["required"] == ["id", "note"]
    assert "additionalProperties" not in lookup["output_schema"]
    assert run(component, "lookup", {"id": "a"})["structuredContent"] == {"id": "a", "note": None, "extra": 1}
    pair = tools["pair"]["input_schema"]["properties"]["p"]
    assert pair == {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "minItems": 1,
                    "maxItems": 2}, pair
    assert run(component, "pair", {"p": ["a"]})["content"][0]["text"] == "1"
    # No return type written: no output schema.
    assert tools["pair"].get("output_schema") is None


def test_jsdoc_types_describe_a_javascript_tool(tmp_path):
    component, tools = build(tmp_path, {"app.js": '''
        import { tool } from "toolmesh";

        /**
         * @typedef {object} Args
         * @property {string} city The city.
         * @property {number} [days] How many days ahead.
         * @property {"c" | "f"} [unit] The temperature unit.
         */

        /** A made-up forecast. */
        tool({ name: "forecast" },
          /** @param {Args} args */
          ({ city, days = 3, unit = "c" }) => ({ city, days, unit }));
    '''})
    schema = tools["forecast"]["input_schema"]
    assert schema["required"] == ["city"]
    assert schema["properties"]["city"] == {"type": "string", "description": "The city."}
    assert schema["properties"]["days"] == {"type": "number", "description": "How many days ahead.", "default": 3}
    assert schema["properties"]["unit"]["enum"] == ["c", "f"]
    assert tools["forecast"]["description"] == "A made-up forecast."
    assert run(component, "forecast", {"city": "Oslo"})["structuredContent"] == {"city": "Oslo", "days": 3, "unit": "c"}


def test_local_modules_and_an_npm_package_are_bundled(tmp_path):
    component, tools = build(tmp_path, {
        "package.json": '{"name": "same", "private": true, "dependencies": {"fast-deep-equal": "3.1.3"}}',
        "compare.ts": '''
            import equal from "fast-deep-equal";
            export const same = (a: unknown, b: unknown): boolean => equal(a, b);
        ''',
        "app.ts": '''
            import { tool } from "toolmesh";
            import { same } from "./compare.ts";

            /** Whether two JSON values are deeply equal. */
            tool({ name: "same" }, ({ a, b }: { a: unknown; b: unknown }) => (same(a, b) ? "equal" : "different"));
        ''',
    })
    assert tools["same"]["input_schema"]["required"] == ["a", "b"]
    assert tools["same"]["description"] == "Whether two JSON values are deeply equal."
    value = {"x": [1, {"y": None}]}
    assert run(component, "same", {"a": value, "b": value})["content"][0]["text"] == "equal"
    assert run(component, "same", {"a": value, "b": {"x": [1, {"y": 0}]}})["content"][0]["text"] == "different"


@pytest.mark.parametrize(
    "file, source, expected",
    [
        ("app.ts", 'import { tool } from "toolmesh";\n\nconst n: number = "text";\ntool({ name: "x" }, () => n);\n',
         "app.ts:3: Type 'string' is not assignable to type 'number'"),
        ("app.js", 'import { tool } from "toolmesh";\n\ntool({ name: "x" }, () => {\n  return (1 +;\n});\n',
         "app.js:4: SyntaxError: Expression expected"),
        ("app.ts", 'import { tool } from "toolmesh";\n\n\ntool({ name: "x" }, ({ when }: { when: Date }) => String(when));\n',
         "app.ts:4: x.when: a Date cannot come from JSON"),
        ("app.ts", 'import { tool } from "toolmesh";\n\ntool({ name: "x" }, ({ n }: { n: bigint }) => String(n));\n',
         "app.ts:3: x.n: a bigint cannot come from JSON"),
        ("app.ts", 'import { tool } from "toolmesh";\n\ntool({ name: "x" },\n  ({ at }: { at: URL }) => at.href);\n',
         "app.ts:4: x.at: a URL cannot come from JSON"),
        ("app.js", 'import { tool } from "toolmesh";\n\ntool({ name: "x" }, (args) => args);\n',
         "app.js:3: tool `x`: its arguments have no type"),
        ("app.ts", 'import { tool } from "toolmesh";\nimport { nothing } from "./missing.ts";\ntool({ name: "x" }, () => nothing);\n',
         "app.ts:2: Cannot find module './missing.ts'"),
        ("app.ts", "const nothing = 1;\nexport default nothing;\n", "defines no tool"),
    ],
)
def test_a_bad_project_is_answered_in_one_line(tmp_path, file, source, expected):
    dir = tool_project(tmp_path, {file: source})
    built = tool("build", str(dir))
    assert built.returncode == 1, built.stderr
    error = [line for line in built.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and expected in error[0], built.stderr


@pytest.mark.anyio
async def test_the_python_and_typescript_examples_are_served(tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    for name in ["tables.wasm", "cron.wasm"]:
        (examples / name).symlink_to(COMPONENTS / name)
    with start_gateway(tmp_path, examples=examples, timeout="30s") as (base, _data, _log, _proc):
        async with mcp.Client(f"{base}/mcp") as client:
            await until_listed(client, "examples.tables.summarize")
            tools = await until_listed(client, "examples.cron.next_runs")
            assert {"examples.tables.query", "examples.tables.convert", "examples.cron.explain"} <= set(tools)
            csv = "name,age,city\nAda,36,London\nAlan,41,Wilmslow\nGrace,85,\"New York, NY\"\n"
            summary = (await client.call_tool("examples.tables.summarize", {"csv": csv})).structured_content
            age = summary["columns"][1]
            assert summary["rows"] == 3 and age["kind"] == "number" and age["median"] == 41 and age["maximum"] == 85
            rows = await client.call_tool("examples.tables.query", {
                "csv": csv, "where": [{"column": "age", "op": ">", "value": "40"}], "sort_by": "age",
                "descending": True, "columns": ["name", "city"]})
            assert rows.structured_content == {"columns": ["name", "city"], "matched": 2, "rows": [
                {"name": "Grace", "city": "New York, NY"}, {"name": "Alan", "city": "Wilmslow"}]}
            table = await client.call_tool("examples.tables.convert", {"csv": csv, "to": "markdown"})
            assert table.content[0].text.splitlines()[3] == "| Alan | 41 | Wilmslow |"
            with pytest.raises(mcp.MCPError, match="no column named 'height'"):
                await client.call_tool("examples.tables.query", {"csv": csv, "sort_by": "height"})
            runs = await client.call_tool("examples.cron.next_runs", {
                "expression": "30 9 * * MON-FRI", "count": 3, "after": "2026-12-04T10:00:00Z"})
            assert runs.structured_content["runs"] == [
                "2026-12-07T09:30:00Z", "2026-12-08T09:30:00Z", "2026-12-09T09:30:00Z"]
            leap = await client.call_tool("examples.cron.next_runs", {
                "expression": "0 12 29 2 *", "count": 2, "after": "2026-01-01T00:00:00Z"})
            assert leap.structured_content["runs"] == ["2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"]
            # Both day fields restricted: either matches (the 1st, or a Monday);
            # a day field that starts with `*` leaves the other to decide alone
            # (odd days that are Mondays); 7 is Sunday too.
            for expression, runs in [
                ("0 0 1 * MON", ["2026-12-07T00:00:00Z", "2026-12-14T00:00:00Z", "2026-12-21T00:00:00Z"]),
                ("0 0 */2 * MON", ["2026-12-07T00:00:00Z", "2026-12-21T00:00:00Z", "2027-01-11T00:00:00Z"]),
                ("0 0 * * 7", ["2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z", "2026-12-20T00:00:00Z"]),
                ("5/20 0 1 JAN-FEB *", ["2027-01-01T00:05:00Z", "2027-01-01T00:25:00Z", "2027-01-01T00:45:00Z"]),
            ]:
                found = await client.call_tool("examples.cron.next_runs", {
                    "expression": expression, "count": 3, "after": "2026-12-01T12:00:00Z"})
                assert found.structured_content["runs"] == runs, (expression, found.structured_content)
            said = await client.call_tool("examples.cron.explain", {"expression": "@weekly"})
            assert said.structured_content["description"] == "at 00:00, on Sunday (UTC)"
            with pytest.raises(mcp.MCPError, match='"61" is not a minute'):
                await client.call_tool("examples.cron.explain", {"expression": "61 * * * *"})
