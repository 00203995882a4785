"""The gateway with the official Python MCP SDK, over streamable HTTP and
stdio, in both the 2026-07-28 (stateless) and legacy (session) modes.

Fixtures are in conftest.py.
"""

import base64
import os
import subprocess
import urllib.request

import anyio
import mcp
import pytest
from conftest import COMPONENTS, TOOL, publish_to, until_listed

MODES = ["auto", "legacy"]
EXAMPLE_TOOLS = [
    "examples.archive.unpack",
    "examples.fetch.fetch",
    "examples.hello.greet",
    "examples.image.grayscale",
    "examples.image.info",
    "examples.image.resize",
    "examples.image.thumbnail",
    "examples.javascript.run_javascript",
    "examples.markdown.to_html",
    "examples.markdown.toc",
    "examples.matmul.matmul",
    "examples.matmul.matmul_bench",
    "examples.text.count",
    "examples.text.diff",
    "examples.text.regex_find",
    "examples.text.regex_replace",
    "examples.text.slugify",
]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAIAAAB7QOjdAAAADUlEQVR4nGP4zwAE/wEHAAH/4iOeWQAAAABJRU5ErkJggg=="


@pytest.fixture
def anyio_backend():
    return "asyncio"


def text_of(result):
    return "".join(c.text for c in result.content if c.type == "text")


async def check_examples(client):
    tools = await client.list_tools()
    assert sorted(t.name for t in tools.tools) == EXAMPLE_TOOLS
    greet = next(t for t in tools.tools if t.name == "examples.hello.greet")
    assert greet.input_schema["required"] == ["name"]
    assert greet.annotations.read_only_hint is True

    assert text_of(await client.call_tool("examples.hello.greet", {"name": "MCP"})) == "Hello, MCP!"
    counted = await client.call_tool("examples.text.count", {"text": "one two"})
    assert counted.structured_content == {"characters": 7, "bytes": 7, "words": 2, "lines": 1}
    assert not counted.is_error
    slug = await client.call_tool("examples.text.slugify", {"text": "Über MCP!"})
    assert text_of(slug) == "uber-mcp"
    found = await client.call_tool("examples.text.regex_find", {"pattern": "b+", "text": "abbc"})
    assert found.structured_content["matches"][0]["text"] == "bb"
    replaced = await client.call_tool("examples.text.regex_replace", {"pattern": "b", "replacement": "x", "text": "abb"})
    assert replaced.structured_content == {"text": "axx", "replacements": 2}
    diff = await client.call_tool("examples.text.diff", {"old": "a\n", "new": "b\n"})
    assert "-a\n+b" in text_of(diff)
    html = await client.call_tool("examples.markdown.to_html", {"markdown": "# T"})
    assert text_of(html) == "<h1>T</h1>\n"
    toc = await client.call_tool("examples.markdown.toc", {"markdown": "# A\n## B"})
    assert [h["anchor"] for h in toc.structured_content["headings"]] == ["a", "b"]
    info = await client.call_tool("examples.image.info", {"image": PNG})
    assert (info.structured_content["width"], info.structured_content["height"]) == (2, 1)
    for tool, args in [
        ("examples.image.resize", {"image": PNG, "width": 4, "height": 4, "keep_aspect": False}),
        ("examples.image.grayscale", {"image": PNG}),
        ("examples.image.thumbnail", {"image": PNG, "size": 1}),
    ]:
        result = await client.call_tool(tool, args)
        image = result.content[0]
        assert (image.type, image.mime_type) == ("image", "image/png"), tool
        assert base64.b64decode(image.data)[1:4] == b"PNG", tool


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_http_lists_and_calls_every_example(gateway, mode):
    base, _, _ = gateway
    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        await check_examples(client)
    # `tool serve` is a gateway and a node: /metrics counts the calls as both.
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    assert 'toolmesh_gateway_calls_total{tool="examples.text.diff",outcome="ok"} 1\n' in metrics, metrics
    assert 'toolmesh_node_calls_total{tool="diff",outcome="ok"} 1\n' in metrics, metrics
    assert 'toolmesh_gateway_call_seconds_count{tool="examples.image.resize"} 1\n' in metrics, metrics
    assert "toolmesh_gateway_in_flight 0\n" in metrics, metrics


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_stdio_lists_and_calls_every_example(gateway, mode):
    _, data, _ = gateway
    params = mcp.StdioServerParameters(command=TOOL, args=["mcp", "--data", str(data), "--timeout", "1s"])
    async with mcp.Client(params, mode=mode) as client:
        await check_examples(client)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_errors_are_results_or_protocol_errors_as_the_spec_says(gateway, mode):
    base, data, _ = gateway
    publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        with pytest.raises(mcp.MCPError) as unknown:
            await client.call_tool("examples.nope", {})
        assert unknown.value.error.code == -32602
        with pytest.raises(mcp.MCPError) as invalid:
            await client.call_tool("examples.hello.greet", {"name": 3})
        assert invalid.value.error.code == -32602
        assert '/name: 3 is not of type "string"' in invalid.value.error.message
        for tool, args, needle in [
            ("test.hostile.spin", {}, "time limit of 1 s"),
            ("test.hostile.grow", {}, "memory limit"),
            ("test.hostile.panic", {}, "panicked on purpose"),
            ("test.hostile.read_file", {"path": "/etc/passwd"}, "tool failed"),
            ("test.hostile.wrong_shape", {}, 'does not match its output schema: /count: "many" is not of type "integer"'),
        ]:
            result = await client.call_tool(tool, args)
            assert result.is_error, tool
            assert needle in text_of(result), (tool, text_of(result))
        # The sandbox still serves.
        assert text_of(await client.call_tool("test.hostile.echo", {"text": "ok"})) == "ok"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_progress_reaches_the_client(gateway, mode):
    base, data, _ = gateway
    publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        result = await client.call_tool("test.hostile.progress", {"steps": 3}, progress_callback=on_progress)
    assert text_of(result) == "3 steps"
    assert seen == [(1.0, 3.0, "step 1"), (2.0, 3.0, "step 2"), (3.0, 3.0, "step 3")]


@pytest.mark.anyio
async def test_list_changed_reaches_a_legacy_session(gateway):
    base, data, _ = gateway
    changed = anyio.Event()

    async def on_message(message):
        if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed":
            changed.set()

    async with mcp.Client(f"{base}/mcp", mode="legacy", message_handler=on_message) as client:
        assert len((await client.list_tools()).tools) == len(EXAMPLE_TOOLS)
        publish_to(base, data, COMPONENTS / "hello.wasm", "acme/hello", "2.0")
        with anyio.fail_after(15):
            await changed.wait()
        names = [t.name for t in (await client.list_tools()).tools]
        assert "acme.hello.greet" in names


@pytest.mark.anyio
async def test_a_yanked_version_leaves_the_tool_list(gateway):
    base, data, _ = gateway
    publish_to(base, data, COMPONENTS / "hello.wasm", "acme/hello", "2.0")
    # On the machine that runs `tool serve`, the CLI reads its push token.
    local = {**os.environ, "TOOLMESH_DATA": str(data)}
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "acme.hello.greet")
        yanked = subprocess.run([TOOL, "yank", "acme/hello:2.0", "--registry", base],
                                capture_output=True, text=True, timeout=60, env=local)
        assert yanked.returncode == 0, yanked.stderr
        with anyio.fail_after(15):
            while "acme.hello.greet" in [t.name for t in (await client.list_tools()).tools]:
                await anyio.sleep(0.05)
        # Without the token the registry refuses.
        refused = subprocess.run([TOOL, "yank", "acme/hello:2.0", "--undo", "--registry", base],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "UNAUTHORIZED" in refused.stderr, refused.stderr
        undone = subprocess.run([TOOL, "yank", "acme/hello:2.0", "--undo", "--registry", base],
                                capture_output=True, text=True, timeout=60, env=local)
        assert undone.returncode == 0, undone.stderr
        await until_listed(client, "acme.hello.greet")
        result = await client.call_tool("acme.hello.greet", {"name": "again"})
        assert text_of(result) == "Hello, again!"


@pytest.mark.anyio
async def test_list_changed_reaches_a_2026_subscription(gateway):
    base, data, _ = gateway
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            publish_to(base, data, COMPONENTS / "hello.wasm", "acme/hello", "3.0")
            with anyio.fail_after(15):
                async for _event in subscription:
                    break
        names = [t.name for t in (await client.list_tools()).tools]
        assert "acme.hello.greet" in names


@pytest.mark.anyio
async def test_a_cancelled_call_stops_the_sandbox(gateway):
    base, data, log = gateway
    publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
    async with mcp.Client(f"{base}/mcp", mode="legacy") as client:
        with anyio.move_on_after(0.3):
            await client.call_tool("test.hostile.sleep", {})
        await anyio.sleep(0.5)
        assert text_of(await client.call_tool("test.hostile.echo", {"text": "after"})) == "after"
    with anyio.fail_after(5):
        while 'tool=test.hostile.sleep' not in log.read_text():
            await anyio.sleep(0.1)
    line = next(l for l in log.read_text().splitlines() if "tool=test.hostile.sleep" in l)
    assert 'outcome="cancelled"' in line, line
