"""A Rust tool made outside this repository: `tool new --lang rust` (the
guest SDK kept in the cache), `tool build` (cargo, wasm32-wasip2), then a
call in the sandbox and over MCP."""

import mcp
import pytest
from conftest import build_new_tool, publish_to, run_tool, start_gateway, until_listed


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_new_rust_tool_is_built_and_called(tmp_path):
    component, built = build_new_tool(tmp_path, "units", "rust")
    assert "1 tool (convert)" in built
    done = run_tool("run", str(component), "convert", "-a", '{"value": 100, "from": "c", "to": "f"}')
    assert done.returncode == 0 and done.stdout.strip() == "212 f", done.stdout + done.stderr
    done = run_tool("run", str(component), "convert", "-a", '{"value": 1, "from": "kg", "to": "m"}')
    assert done.returncode == 1 and "cannot convert mass to length" in done.stderr, done.stderr
    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/units", "0.1.0")
        async with mcp.Client(f"{base}/mcp") as client:
            await until_listed(client, "demo.units.convert")
            result = await client.call_tool("demo.units.convert", {"value": 5, "from": "km", "to": "m"})
            assert result.content[0].text == "5000 m"
