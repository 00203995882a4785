"""The JavaScript SDK end to end: `tool new --lang js`, `tool build`
(componentize-js from the cache), `tool publish` into `tool serve`, and a
call with the official MCP client; the schema shorthand; a tool using
granted HTTP (`fetch`) against a local server; bad projects answered in one
line naming the file and line.
"""

import json

import mcp
import pytest
from conftest import build_new_tool, check_progress_and_log, json_server, publish_to, start_gateway, tool_project
from conftest import check_notes_package, until_listed
from conftest import run_tool as tool


def project(tmp_path, source, toml=""):
    return tool_project(tmp_path, {"app.js": source, "tool.toml": toml})


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_new_js_tool_is_built_published_and_called_over_mcp(tmp_path):
    component, built = build_new_tool(tmp_path, "csv", "js")
    assert "1 tool (csv_to_json)" in built
    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/csv", "0.1.0")
        async with mcp.Client(f"{base}/mcp") as client:
            tools = await until_listed(client, "demo.csv.csv_to_json")
            assert tools["demo.csv.csv_to_json"].input_schema["required"] == ["csv"]
            result = await client.call_tool("demo.csv.csv_to_json", {"csv": 'a;b\n1;"x;y"\n', "delimiter": ";"})
            assert result.structured_content == {"columns": ["a", "b"], "rows": [{"a": "1", "b": "x;y"}]}
            failed = await client.call_tool("demo.csv.csv_to_json", {"csv": "a", "delimiter": "ab"})
            assert failed.is_error and "one character" in failed.content[0].text


def test_the_schema_shorthand_and_results(tmp_path):
    dir = project(tmp_path, '''
        import { tool, Image, InvalidArguments } from "toolmesh";

        tool({
          name: "shapes",
          description: "Mixes required, defaulted and optional arguments.",
          input: {
            n: { type: "integer" },
            unit: { type: "string", enum: ["m", "km"], default: "m" },
            note: { type: "string", optional: true },
          },
        }, ({ n, unit = "m", note }) => {
          if (n < 0) throw new InvalidArguments("`n` cannot be negative");
          return { n, unit, note: note ?? null };
        });

        tool({ name: "pixel", description: "A one-pixel PNG." }, () =>
          new Image(Uint8Array.from(atob("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="), (c) => c.charCodeAt(0))));

        tool({ name: "later", description: "Answers after awaiting." }, async () => {
          await Promise.resolve();
          return "done";
        });
    ''')
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()
    tools = {t["name"]: t for t in json.loads(tool("inspect", component, "--json").stdout)["tools"]}
    assert tools["shapes"]["input_schema"]["required"] == ["n"]
    assert tools["shapes"]["input_schema"]["properties"]["note"] == {"type": "string"}
    done = tool("run", component, "shapes", "--json", "-a", '{"n": 2}')
    assert json.loads(done.stdout)["structuredContent"] == {"n": 2, "unit": "m", "note": None}
    done = tool("run", component, "shapes", "-a", '{"n": -1}')
    assert done.returncode == 2 and "cannot be negative" in done.stderr, done.stderr
    done = tool("run", component, "pixel", "--json")
    assert json.loads(done.stdout)["content"][0]["mimeType"] == "image/png"
    assert tool("run", component, "later").stdout.strip() == "done"


def test_a_js_tool_fetches_from_a_granted_host(tmp_path):
    with json_server(lambda _method, path, _kind, _sent: (200, {"path": path, "items": [1, 2, 3]})) as target:
        dir = project(tmp_path, '''
            import { tool, ToolError } from "toolmesh";

            tool({ name: "count", description: "Counts the items at a URL.", input: { url: { type: "string" } } },
              async ({ url }) => {
                const response = await fetch(url);
                if (!response.ok) throw new ToolError(`HTTP ${response.status}`);
                const data = await response.json();
                return { path: data.path, count: data.items.length };
              });
        ''', f'[permissions]\nnetwork = ["{target}"]\n')
        built = tool("build", str(dir))
        assert built.returncode == 0, built.stderr
        policy = tmp_path / "policy.toml"
        policy.write_text(f'[network]\nallow = ["{target}"]\n')
        component = built.stdout.strip()
        done = tool("run", component, "count", "--json", "--policy", str(policy), "-a", json.dumps({"url": f"{target}/list"}))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["structuredContent"] == {"path": "/list", "count": 3}
        # Without the policy's grant the call does not run at all.
        done = tool("run", component, "count", "-a", json.dumps({"url": f"{target}/list"}))
        assert done.returncode != 0 and "not in the policy's [network] allow" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "source, expected",
    [
        ('import { tool } from "toolmesh";\n\ntool({ name: "x" }, () => {\n  return (1 +;\n});\n',
         "app.js:4: SyntaxError: Expression expected"),
        ("const nothing = 1;\n", "defines no tool"),
    ],
)
def test_a_bad_project_is_answered_in_one_line(tmp_path, source, expected):
    dir = project(tmp_path, source)
    built = tool("build", str(dir))
    assert built.returncode == 1, built.stderr
    error = [line for line in built.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and expected in error[0], built.stderr


@pytest.mark.anyio
async def test_progress_reaches_the_client_and_log_lines_the_node(tmp_path):
    dir = project(tmp_path, '''
        import { tool, log, progress } from "toolmesh";

        tool({ name: "work", description: "Works in steps, reporting each.", input: { steps: { type: "integer" } } },
          ({ steps }) => {
            for (let i = 1; i <= steps; i++) {
              progress(i, steps, `step ${i}`);
              const until = Date.now() + 50;
              while (Date.now() < until) {}
            }
            log("all steps done", "warn");
            return `${steps} steps`;
          });
    ''')
    await check_progress_and_log(tmp_path, dir)


OFFERS = r'''
import { Audio, Embedded, Link, NotFound, ask, prompt, resource, resourceUpdated, tool } from "toolmesh";

const PAGES = { intro: "Welcome." };

resource({ uri: "notes://readme", mimeType: "text/markdown", description: "How to use these notes." }, () => "# Notes");
resource({ uri: "notes://pages/{slug}", mimeType: "text/plain" }, ({ slug }) => {
  if (!(slug in PAGES)) throw new NotFound(`no page ${slug}`);
  return PAGES[slug];
});

prompt({ name: "review", description: "Asks for a review.", arguments: { text: {}, tone: { required: false } } },
  ({ text, tone = "kind" }) => [new Embedded("notes://draft", text, "text/plain"), `Review it, ${tone}ly.`]);

tool({ name: "media", description: "Audio, a resource and a link.", input: {} },
  () => ["Here:", new Audio(new Uint8Array([82, 73, 70, 70]), "audio/wav"), new Embedded("notes://x", new Uint8Array([0, 1])),
         new Link("notes://readme", "readme", "How to use these notes.")]);

tool({ name: "touch", description: "Marks a page changed.", input: { slug: { type: "string" } }, task: "optional" },
  ({ slug }) => {
    resourceUpdated(`notes://pages/${slug}`);
    resourceUpdated("other://not-ours");
    return `touched ${slug}`;
  });

tool({ name: "greet", description: "Asks the user's name.", input: {} }, () => {
  const answer = ask.elicit("user_name", "What is your name?", { name: "string" });
  return answer ? `Hello, ${answer.name}!` : "Hello, stranger!";
});
'''


@pytest.mark.anyio
async def test_js_tools_offer_resources_prompts_every_content_and_ask(tmp_path):
    from mcp import types

    dir = project(tmp_path, OFFERS)
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()

    async def elicit(context, params):
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/notes", "0.1.0")
        async with mcp.Client(f"{base}/mcp", elicitation_callback=elicit) as client:
            await until_listed(client, "demo.notes.greet")
            await check_notes_package(client)
