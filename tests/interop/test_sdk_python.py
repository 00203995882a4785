"""The Python SDK end to end: `tool new --lang python`, `tool build`
(componentize-py from the cache), `tool publish` into `tool serve`, and a
call with the official MCP client; every supported type hint round-tripped;
a pure-Python dependency bundled; HTTP to a granted host; bad projects
answered in one line naming the file and line.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import mcp
import pytest
from conftest import build_new_tool, check_progress_and_log, json_server, publish_to, start_gateway, tool_project
from conftest import check_notes_package, until_listed
from conftest import run_tool as tool



def project(tmp_path, source, requirements=None, toml=None):
    files = {"app.py": source}
    if requirements:
        files["requirements.txt"] = requirements
    if toml:
        files["tool.toml"] = toml
    return tool_project(tmp_path, files)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_new_python_tool_is_built_published_and_called_over_mcp(tmp_path):
    component, built = build_new_tool(tmp_path, "stats", "python")
    assert "1 tool (text_stats)" in built
    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/stats", "0.1.0")
        async with mcp.Client(f"{base}/mcp") as client:
            tools = await until_listed(client, "demo.stats.text_stats")
            assert tools["demo.stats.text_stats"].annotations.read_only_hint is True
            result = await client.call_tool("demo.stats.text_stats", {"text": "One fish. Two fish! Red fish.", "top": 1})
            assert result.structured_content == {"words": 6, "sentences": 3, "top_words": ["fish"]}
            failed = await client.call_tool("demo.stats.text_stats", {"text": "x", "top": -1})
            assert failed.is_error and "cannot be negative" in failed.content[0].text


TYPES = '''
import enum
from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional, TypedDict

from toolmesh import Image, tool


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Point:
    """A point on a plane."""
    x: float
    y: float = 0.0


class Options(TypedDict, total=False):
    depth: int
    label: str


@dataclass
class Everything:
    text: str
    count: int
    ratio: float
    flag: bool
    blob: bytes
    tags: list[str]
    scores: dict[str, int]
    pair: tuple[int, str]
    maybe: Optional[str]
    mode: Literal["fast", "slow"]
    color: Color
    point: Point
    options: Options
    points: list[Point] = field(default_factory=list)


@tool
def echo(value: Everything) -> Everything:
    """Returns its argument unchanged."""
    return value


@tool
def shapes(n: Annotated[int, "How many."], unit: Literal["m", "km"] = "m", where: Point | None = None) -> dict:
    """Mixes optional and annotated parameters.

    Args:
        unit: The unit.
    """
    return {"n": n, "unit": unit, "where": where}


@tool
def pixel() -> Image:
    """A one-pixel PNG."""
    import base64
    return Image(base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlCwAAAABJRU5ErkJggg=="), "image/png")
'''

EVERYTHING = {
    "text": "tab\there ü", "count": -7, "ratio": 0.25, "flag": True, "blob": "AAEC/w==", "tags": ["a", "b"],
    "scores": {"x": 1}, "pair": [1, "one"], "maybe": None, "mode": "slow", "color": "blue",
    "point": {"x": 1.5, "y": -2.0}, "options": {"depth": 3}, "points": [{"x": 0.0, "y": 0.0}],
}


def test_every_supported_type_hint_round_trips(tmp_path):
    dir = project(tmp_path, TYPES)
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()
    described = json.loads(tool("inspect", component, "--json").stdout)
    tools = {t["name"]: t for t in described["tools"]}
    schema = tools["echo"]["input_schema"]["properties"]["value"]
    assert schema["properties"]["mode"] == {"enum": ["fast", "slow"], "type": "string"}
    assert schema["properties"]["blob"]["contentEncoding"] == "base64"
    assert schema["properties"]["point"]["description"] == "A point on a plane."
    assert "points" not in schema["required"] and "maybe" in schema["required"]
    assert tools["echo"]["output_schema"]["properties"]["pair"]["prefixItems"][1] == {"type": "string"}
    shapes = tools["shapes"]["input_schema"]
    assert shapes["required"] == ["n"]
    assert shapes["properties"]["n"]["description"] == "How many."
    assert shapes["properties"]["unit"]["description"] == "The unit."
    done = tool("run", component, "echo", "--json", "-a", json.dumps({"value": EVERYTHING}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["structuredContent"] == EVERYTHING
    done = tool("run", component, "shapes", "--json", "-a", '{"n": 2, "where": {"x": 1}}')
    assert json.loads(done.stdout)["structuredContent"] == {"n": 2, "unit": "m", "where": {"x": 1.0, "y": 0.0}}
    done = tool("run", component, "pixel", "--json")
    assert json.loads(done.stdout)["content"][0]["mimeType"] == "image/png"
    bad = tool("run", component, "echo", "-a", json.dumps({"value": {**EVERYTHING, "color": "green"}}))
    assert bad.returncode == 2 and "color" in bad.stderr, bad.stderr


def test_a_pure_python_dependency_is_bundled(tmp_path):
    dir = project(tmp_path, '''
        import humanize
        from toolmesh import tool

        @tool
        def size(n: int) -> str:
            """A byte count in words."""
            return humanize.naturalsize(n)
    ''', requirements="humanize==4.12.3\n")
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    done = tool("run", built.stdout.strip(), "size", "-a", '{"n": 3000000}')
    assert done.returncode == 0 and done.stdout.strip() == "3.0 MB", done.stdout + done.stderr


def test_a_python_tool_sends_http_to_a_granted_host(tmp_path):
    def echo(method, path, kind, sent):
        return 201 if method == "POST" else 200, {"method": method, "path": path, "sent": sent, "kind": kind}

    with json_server(echo) as target:
        dir = project(tmp_path, '''
            from toolmesh import http, tool

            @tool
            def relay(url: str, value: int) -> dict:
                """Gets and posts to a URL."""
                got = http.fetch(url + "/items?page=2").json()
                posted = http.fetch(url + "/items", method="POST", json={"value": value})
                big = http.fetch(url + "/items", max_bytes=10) if value < 0 else None
                return {"get": got, "post": posted.json(), "status": posted.status,
                        "type": posted.header("Content-Type"), "big": big is not None}
        ''', toml=f'[permissions]\nnetwork = [{{ host = "{target}", methods = ["GET", "POST"] }}]\n')
        built = tool("build", str(dir))
        assert built.returncode == 0, built.stderr
        component = built.stdout.strip()
        policy = tmp_path / "policy.toml"
        policy.write_text(f'[network]\nallow = ["{target}"]\n')
        args = ["--json", "--policy", str(policy), "-a"]
        done = tool("run", component, "relay", *args, json.dumps({"url": target, "value": 7}))
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)["structuredContent"]
        assert result["get"] == {"method": "GET", "path": "/items?page=2", "sent": "", "kind": None}, result
        assert result["post"] == {"method": "POST", "path": "/items", "sent": '{"value": 7}',
                                  "kind": "application/json"}, result
        assert (result["status"], result["type"], result["big"]) == (201, "application/json", False)
        # A response over the tool's own limit is its error, named.
        done = tool("run", component, "relay", *args, json.dumps({"url": target, "value": -1}))
        assert done.returncode != 0 and "larger than 10 bytes" in done.stderr, done.stderr
        # A host the policy does not grant is refused by the node.
        done = tool("run", component, "relay", *args, json.dumps({"url": "http://127.0.0.2:9", "value": 1}))
        assert done.returncode != 0 and "HttpRequestDenied" in done.stderr, done.stderr
        # Without the policy's grant the call does not run at all.
        done = tool("run", component, "relay", "-a", json.dumps({"url": target, "value": 1}))
        assert done.returncode != 0 and "not in the policy's [network] allow" in done.stderr, done.stderr


def test_http_without_network_access_says_how_to_get_it(tmp_path):
    dir = project(tmp_path, '''
        from toolmesh import http, tool

        @tool
        def get(url: str) -> str:
            """Gets a URL."""
            return http.fetch(url).text()
    ''')
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    done = tool("run", built.stdout.strip(), "get", "-a", '{"url": "http://127.0.0.1:9/"}')
    assert done.returncode != 0 and "built without network access" in done.stderr, done.stderr


def test_outside_a_component_http_goes_through_urllib(tmp_path):
    # A tool's own unit tests run in plain CPython, where there is no host.
    sdk = pathlib.Path(__file__).resolve().parents[2] / "guest-sdk" / "python"
    script = tmp_path / "check.py"
    script.write_text(textwrap.dedent('''
        import json, sys
        from toolmesh import http
        answer = http.fetch(sys.argv[1] + "/x", method="POST", json={"a": 1})
        print(json.dumps([answer.status, answer.header("CONTENT-TYPE"), answer.json()]))
        try:
            http.fetch(sys.argv[1], max_bytes=5)
        except http.HttpError as e:
            print(e)
    '''))
    with json_server(lambda method, path, kind, sent: (201, {"method": method, "path": path, "sent": sent})) as url:
        done = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONPATH": str(sdk)})
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert json.loads(first) == [201, "application/json", {"method": "POST", "path": "/x", "sent": '{"a": 1}'}]
    assert second == "the response is larger than 5 bytes"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from toolmesh import tool\n\n@tool\ndef f(x: int) -> int\n    return x\n", "app.py:4: SyntaxError"),
        ("def f(x: int) -> int:\n    return x\n", "app.py: no function has the @tool decorator"),
        ("from toolmesh import tool\n\n\n@tool\ndef f(x: complex) -> int:\n    return 1\n",
         "app.py:4: tool `f`: parameter `x`: `complex` has no JSON Schema"),
        ("from toolmesh import tool\nimport not_a_module\n", "app.py:2: ModuleNotFoundError: No module named 'not_a_module'"),
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
        import time
        from toolmesh import log, progress, tool

        @tool
        def work(steps: int) -> str:
            """Works in steps, reporting each."""
            for i in range(1, steps + 1):
                progress(i, steps, f"step {i}")
                time.sleep(0.05)
            log("all steps done", "warn")
            return f"{steps} steps"
    ''')
    await check_progress_and_log(tmp_path, dir)


OFFERS = '''
from toolmesh import Audio, Embedded, Link, Message, ask, prompt, resource, resource_updated, tool

PAGES = {"intro": "Welcome."}


@resource("notes://readme", mime_type="text/markdown")
def readme() -> str:
    """How to use these notes."""
    return "# Notes"


@resource("notes://pages/{slug}", mime_type="text/plain")
def page(slug: str) -> str:
    """One page of the notes."""
    return PAGES[slug]


@prompt
def review(text: str, tone: str = "kind") -> list:
    """Asks for a review of a text."""
    return [Message(Embedded("notes://draft", text, "text/plain")), Message(f"Review it, {tone}ly.")]


@tool
def media() -> list:
    """Returns audio, an embedded resource and a link."""
    return ["Here:", Audio(b"RIFF0000WAVE", "audio/wav"), Embedded("notes://x", b"\\x00\\x01"),
            Link("notes://readme", "readme", "How to use these notes.")]


@tool(task="optional")
def touch(slug: str) -> str:
    """Marks a page changed."""
    resource_updated(f"notes://pages/{slug}")
    resource_updated("other://not-ours")
    return f"touched {slug}"


@tool
def greet() -> str:
    """Asks the user's name, then greets them."""
    answer = ask.elicit("user_name", "What is your name?", {"name": str})
    if answer is None:
        return "Hello, stranger!"
    return f"Hello, {answer['name']}!"


@tool
def both() -> str:
    """Asks the user and the model at once."""
    name, word = ask.gather(ask.later(ask.elicit, "name", "Name?", {"name": str}),
                            ask.later(ask.sample, "word", "A word?"))
    return f"{name['name']} says {word}"
'''


@pytest.mark.anyio
async def test_python_tools_offer_resources_prompts_every_content_and_ask(tmp_path):
    from mcp import types

    dir = project(tmp_path, OFFERS)
    built = tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()

    async def elicit(context, params):
        return types.ElicitResult(action="accept", content={next(iter(params.requested_schema["properties"])): "Ada"})

    async def sample(context, params):
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="hi"),
                                         model="m")

    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/notes", "0.1.0")
        async with mcp.Client(f"{base}/mcp", elicitation_callback=elicit, sampling_callback=sample) as client:
            await until_listed(client, "demo.notes.greet")
            prompts = {p.name: p for p in (await client.list_prompts(cache_mode="bypass")).prompts}
            assert [(a.name, a.required) for a in prompts["demo.notes.review"].arguments] == [("text", True),
                                                                                             ("tone", False)]
            await check_notes_package(client)
            assert (await client.call_tool("demo.notes.both", {})).content[0].text == "Ada says hi"
