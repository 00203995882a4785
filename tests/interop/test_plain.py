"""Components of other worlds, built by other languages' own toolchains:
the `tests/plain` fixture in Rust (wit-bindgen), JavaScript
(componentize-js) and Python (componentize-py), each exporting plain WIT
functions with every WIT type, run unchanged through `tool inspect`,
`tool run` and `tool serve` with the official MCP client.

The JavaScript and Python components are built here (with the pinned
toolchains scripts/test.sh installs) and kept by the hash of their inputs.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess

import urllib.request

import mcp
import pytest
from conftest import COMPONENTS, TOOL, publish_to, start_gateway, until_listed

FIXTURE = pathlib.Path(__file__).parent.parent / "plain"
CACHE = pathlib.Path(os.environ.get("TOOLMESH_PLAIN_CACHE", "/tmp/toolmesh-plain-components"))
PORTABLE = [
    "add", "bench.echo_text", "bench.greet", "values.area", "values.check", "values.count_bytes", "values.crash",
    "values.describe", "values.divide", "values.echo", "values.greet",
]
EVERYTHING = {
    "flag": True, "tiny": -128, "byte": 255, "short": -32768, "ushort": 65535,
    "int": -2147483648, "uint": 4294967295, "long": -9223372036854775807, "ulong": 18446744073709551615,
    "single": 1.5, "double": -2.25e300, "letter": "ü", "text": "tab\there \U0001F600",
    "blob": "AAEC/w==", "numbers": [1, -2, 3], "maybe": "here", "maybe-maybe": {"some": 7},
    "pair": [9, "nine"], "shape": {"rectangle": [{"x": 0.5, "y": 1.0}, {"x": 2.5, "y": 4.0}]},
    "color": "blue", "permissions": ["read", "execute"], "outcome": {"err": "nope"}, "done": {"ok": None},
}


def build(language, source, command):
    """The component of `language`, built by `command(out)` unless one
    built from the same inputs is kept."""
    digest = hashlib.sha256()
    for path in sorted([*(FIXTURE / "wit").rglob("*.wit"), *source.rglob("*")]):
        if path.is_file():
            digest.update(path.relative_to(FIXTURE).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(" ".join(command("OUT")).encode())
    out = CACHE / f"plain-{language}-{digest.hexdigest()[:16]}.wasm"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial")
        env = {**os.environ, "PATH": os.environ["TOOLMESH_NODE_BIN"] + os.pathsep + os.environ["PATH"]}
        done = subprocess.run(command(str(partial)), capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        partial.rename(out)
    return out


@pytest.fixture(scope="module")
def components():
    js = build(
        "javascript",
        FIXTURE / "js",
        lambda out: [
            os.environ["TOOLMESH_COMPONENTIZE_JS"], str(FIXTURE / "js/app.js"), "--wit", str(FIXTURE / "wit"),
            "-n", "portable", "-o", out, "-d", "http", "-d", "fetch-event", "-d", "stdio", "-d", "random", "-d", "clocks",
        ],
    )
    py = build(
        "python",
        FIXTURE / "python",
        lambda out: [
            os.environ["TOOLMESH_COMPONENTIZE_PY"], "-d", str(FIXTURE / "wit"), "-w", "portable", "componentize",
            "-p", str(FIXTURE / "python"), "app", "-o", out,
        ],
    )
    return {"rust": COMPONENTS / "plain.wasm", "javascript": js, "python": py}


def tool(*args):
    done = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=120)
    return done


def inspect(component):
    done = tool("inspect", str(component), "--json")
    assert done.returncode == 0, done.stderr
    return {t["name"]: t for t in json.loads(done.stdout)["tools"]}, json.loads(done.stdout)


def test_every_language_is_described_alike_from_the_same_wit(components):
    described = {language: inspect(path) for language, path in components.items()}
    for language, (tools, whole) in described.items():
        assert whole["world"] == "plain", language
        assert set(PORTABLE) <= set(tools), (language, sorted(tools))
    rust = described["rust"][0]
    assert "files.read" in rust and "files.read" not in described["python"][0]
    for language in ["javascript", "python"]:
        tools = described[language][0]
        for name in PORTABLE:
            assert tools[name]["input_schema"] == rust[name]["input_schema"], (language, name)
            assert tools[name].get("output_schema") == rust[name].get("output_schema"), (language, name)
    fields = rust["values.echo"]["input_schema"]["properties"]["value"]["properties"]
    assert fields["short"] == {"type": "integer", "minimum": -32768, "maximum": 32767}
    assert fields["blob"]["contentEncoding"] == "base64"


@pytest.mark.parametrize("language", ["rust", "javascript", "python"])
def test_tool_run_round_trips_every_type(components, language):
    component = components[language]
    done = tool("run", str(component), "values.echo", "--json", "-a", json.dumps({"value": EVERYTHING}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["structuredContent"]["result"] == EVERYTHING
    done = tool("run", str(component), "values.divide", "-a", '{"dividend": 7, "divisor": 0}')
    assert done.returncode == 1 and "cannot divide 7 by 0" in done.stderr, done.stderr
    done = tool("run", str(component), "values.check", "-a", '{"positive": -5}')
    assert done.returncode == 1 and "-5 is not positive" in done.stderr, done.stderr
    done = tool("run", str(component), "values.describe", "--json", "-a", '{"color": "green", "permissions": ["write"]}')
    assert json.loads(done.stdout)["structuredContent"]["result"][1] == 1
    done = tool("run", str(component), "values.echo", "-a", json.dumps({"value": {**EVERYTHING, "byte": 256}}))
    assert done.returncode == 2 and "byte" in done.stderr, done.stderr


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tool_serve_offers_them_over_mcp(tmp_path, components, mode):
    with start_gateway(tmp_path) as (base, data, _log, _proc):
        for language, path in components.items():
            publish_to(base, data, path, f"plain/{language}", "1.0.0")
        async with mcp.Client(f"{base}/mcp", mode=mode) as client:
            tools = await until_listed(client, "plain.python.values.echo")
            for language in components:
                prefix = f"plain.{language}"
                assert {f"{prefix}.{name}" for name in PORTABLE} <= set(tools)
                echo = await client.call_tool(f"{prefix}.values.echo", {"value": EVERYTHING})
                assert not echo.is_error and echo.structured_content == {"result": EVERYTHING}, (language, echo)
                greet = await client.call_tool(f"{prefix}.values.greet", {"name": "MCP", "times": 2})
                assert [c.text for c in greet.content] == ["Hello, MCP! Hello, MCP!"]
                failed = await client.call_tool(f"{prefix}.values.divide", {"dividend": 1, "divisor": 0})
                assert failed.is_error and "cannot divide 1 by 0" in failed.content[0].text
                crashed = await client.call_tool(f"{prefix}.values.crash", {"message": "on purpose"})
                assert crashed.is_error
                with pytest.raises(mcp.MCPError) as invalid:
                    await client.call_tool(f"{prefix}.values.greet", {"name": 3})
                assert invalid.value.error.code == -32602
                added = await client.call_tool(f"{prefix}.add", {"a": 2, "b": 40})
                assert added.structured_content == {"result": 42}
        # The marketplace page of each lists its tools with their signatures.
        for language in components:
            page = urllib.request.urlopen(f"{base}/tools/plain/{language}", timeout=10).read().decode()
            assert "values.echo" in page and "divide: func(dividend: s32, divisor: s32)" in page, language
