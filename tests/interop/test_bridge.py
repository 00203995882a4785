"""Bridged MCP servers: real servers from npm and PyPI
(`@modelcontextprotocol/server-everything`, `@modelcontextprotocol/server-filesystem`,
`mcp-server-time`, pinned and installed by scripts/test.sh) and a hostile
server written with the official Python SDK, bridged from a Claude
Desktop-format file on a node of a two-node NATS mesh and called through
the gateway with the official MCP SDK. The OS sandbox must hold against
every escape the servers try, and the node keep serving.

Fixtures are in conftest.py and test_mesh.py.
"""

import contextlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import anyio
import mcp
import pytest
from conftest import TOOL, registry, start_gateway, until_answered, until_listed  # noqa: F401
from test_mesh import Mesh

NODE_BIN = pathlib.Path(os.environ["TOOLMESH_NODE_BIN"])
NODE_MODULES = NODE_BIN.parents[1]
VENV = pathlib.Path(sys.executable).parent.parent
HOSTILE = pathlib.Path(__file__).parent / "servers" / "hostile_mcp.py"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def text(result):
    return "".join(c.text for c in result.content if c.type == "text")


@contextlib.contextmanager
def host_web_server():
    """A loopback HTTP server on the host answering every GET; yields its port."""
    import http.server
    import threading

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the host"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def bridge_files(tmp_path, node, granted_port=9):
    """Writes a Claude Desktop-format servers file and a node policy under
    `tmp_path`; returns (servers file, policy file, private directories' parent)."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "shared.txt").write_text("shared with the servers\n")
    shutil.copy(HOSTILE, served / "hostile_mcp.py")
    bridges = tmp_path / "bridges"
    python = str(VENV / "bin" / "python")
    node_js = str(NODE_BIN / "node")
    servers = {
        "mcpServers": {
            "time": {"command": str(VENV / "bin" / "mcp-server-time"), "args": ["--local-timezone", "UTC"]},
            "everything": {
                "command": node_js,
                "args": [str(NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"), "stdio"],
            },
            # Given the whole file system: the sandbox alone keeps it in.
            "files": {
                "command": node_js,
                "args": [str(NODE_MODULES / "@modelcontextprotocol/server-filesystem/dist/index.js"), "/"],
            },
            "hostile": {"command": python, "args": [str(served / "hostile_mcp.py")], "env": {"GREETING": "hi"}},
            "netted": {"command": python, "args": [str(served / "hostile_mcp.py")]},
            "off": {"command": "/nonexistent", "disabled": True},
        },
        "globalShortcut": "Ctrl+Space",
    }
    servers_file = tmp_path / "claude_desktop_config.json"
    servers_file.write_text(json.dumps(servers))
    read_only = [str(VENV), sys.base_prefix, str(NODE_MODULES.parent), str(served)]
    policy = tmp_path / f"{node}.toml"
    policy.write_text(
        f"""
[bridges]
dir = "{bridges}"
read_only = {json.dumps(read_only)}
memory = "512MiB"
processes = 48
[bridges.servers.netted]
network = ["127.0.0.1:{granted_port}"]
"""
    )
    return servers_file, policy, bridges


@pytest.mark.anyio
async def test_servers_bridged_on_a_mesh_node_are_called_through_the_gateway_and_stay_contained(
    tmp_path, registry  # noqa: F811
):
    outside = tempfile.mkdtemp(prefix="toolmesh-host-secret-")
    pathlib.Path(outside, "secret.txt").write_text("host secret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    with host_web_server() as web, Mesh(tmp_path, registry) as mesh:
        servers, policy, bridges = bridge_files(tmp_path, "laptop", web)
        log, laptop = mesh.node("laptop", "--mcp-servers", str(servers), "--policy", str(policy))
        mesh.node("other")
        base = mesh.gateway()
        async with mcp.Client(f"{base}/mcp") as client:
            for name in ["time.get_current_time", "everything.echo", "files.read_text_file", "hostile.crash",
                         "netted.connect"]:
                tools = await until_listed(client, f"bridged.laptop.{name}", seconds=90)
            # Marked plainly as what it is.
            echo = tools["bridged.laptop.everything.echo"]
            assert "a native process in an OS sandbox" in echo.description, echo.description
            assert "no network" in echo.description
            bridge = echo.meta["dev.toolmesh/bridge"]
            assert (bridge["node"], bridge["server"], bridge["isolation"]["kind"]) == ("laptop", "everything", "os_sandbox")
            netted = tools["bridged.laptop.netted.connect"].description
            assert f"network only to 127.0.0.1:{web}, through the node's proxy" in netted, netted
            assert not any(".off." in name for name in tools)

            # The real servers answer through the gateway.
            now = await client.call_tool("bridged.laptop.time.get_current_time", {"timezone": "Asia/Tokyo"})
            assert not now.is_error, text(now)
            assert now.structured_content["timezone"] == "Asia/Tokyo" and "+09:00" in now.structured_content["datetime"]
            bad_zone = await client.call_tool("bridged.laptop.time.get_current_time", {"timezone": "Mars/Olympus"})
            assert bad_zone.is_error and "Mars/Olympus" in text(bad_zone)
            assert text(await client.call_tool("bridged.laptop.everything.echo", {"message": "hi"})) == "Echo: hi"
            total = await client.call_tool("bridged.laptop.everything.get-sum", {"a": 2, "b": 40})
            assert "42" in text(total), text(total)
            image = await client.call_tool("bridged.laptop.everything.get-tiny-image", {})
            assert [c.type for c in image.content].count("image") == 1
            # The gateway checks arguments against the server's schema first.
            with pytest.raises(Exception, match="invalid arguments"):
                await client.call_tool("bridged.laptop.everything.get-sum", {"a": "two"})

            # Its prompts and resources, as far as the gateway offers them.
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
            assert "bridged.laptop.everything.args-prompt" in prompts, sorted(prompts)
            filled = await client.get_prompt("bridged.laptop.everything.args-prompt", {"city": "Oslo"})
            assert filled.messages[0].content.text == "What's weather in Oslo?", filled
            everything = "toolmesh://bridged/laptop/everything/"
            listed = [r.uri for r in (await client.list_resources(cache_mode="bypass")).resources]
            static = [u for u in listed if u.startswith(everything + "demo://resource/static/document/")]
            assert static, listed
            document = (await client.read_resource(static[0])).contents[0]
            assert document.uri == static[0] and len(document.text) > 10, document
            templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
            assert everything + "demo://resource/dynamic/text/{resourceId}" in templates, templates
            dynamic = (await client.read_resource(everything + "demo://resource/dynamic/text/7")).contents[0]
            assert dynamic.uri == everything + "demo://resource/dynamic/text/7" and "7" in dynamic.text, dynamic
            readme = (await client.read_resource(everything + "README.md")).contents[0]
            assert "a native process in an OS sandbox" in readme.text and "echo" in readme.text, readme.text[:400]

            # Progress passes back.
            seen = []

            async def on_progress(progress, total, message):
                seen.append((progress, total))

            done = await client.call_tool(
                "bridged.laptop.everything.trigger-long-running-operation",
                {"duration": 1, "steps": 4},
                progress_callback=on_progress,
            )
            assert not done.is_error, text(done)
            assert len(seen) >= 3 and seen[-1][1] == 4, seen

            # Cancellation passes on: the server itself sees it.
            with anyio.move_on_after(1.5):
                await client.call_tool("bridged.laptop.hostile.sleep", {"seconds": 20})
            cancelled = bridges / "hostile" / "cancelled"
            for _ in range(100):
                if cancelled.exists():
                    break
                await anyio.sleep(0.1)
            assert cancelled.read_text() == "cancelled"

            # Escapes, each contained, by a server nobody on the project wrote
            # (given "/" as its allowed directory) and by the hostile one.
            shared = tmp_path / "served" / "shared.txt"
            ok = await client.call_tool("bridged.laptop.files.read_text_file", {"path": str(shared)})
            # Its text block as it wrote it; its structured content as such.
            assert ok.content[0].text == "shared with the servers\n", text(ok)
            assert ok.structured_content == {"content": "shared with the servers\n"}
            for path in ["/etc/shadow", f"{outside}/secret.txt"]:
                denied = await client.call_tool("bridged.laptop.files.read_text_file", {"path": path})
                assert denied.is_error and "host secret" not in text(denied), (path, text(denied))
            home = await client.call_tool("bridged.laptop.files.list_directory", {"path": "/root"})
            assert "[FILE]" not in text(home) and ".bashrc" not in text(home), text(home)
            escape = await client.call_tool("bridged.laptop.files.write_file", {"path": "/usr/escape.txt", "content": "x"})
            assert escape.is_error and not pathlib.Path("/usr/escape.txt").exists()
            overwrite = await client.call_tool("bridged.laptop.files.write_file", {"path": str(shared), "content": "x"})
            assert overwrite.is_error and shared.read_text() == "shared with the servers\n"
            own = bridges / "files" / "note.txt"
            wrote = await client.call_tool("bridged.laptop.files.write_file", {"path": str(own), "content": "kept"})
            assert not wrote.is_error and own.read_text() == "kept", text(wrote)

            who = text(await client.call_tool("bridged.laptop.hostile.whoami", {}))
            uid, processes = who.split()[0], int(who.split()[1].split("=")[1])
            if os.getuid() == 0:
                assert uid != "uid=0", who
            assert processes < 10 and f"home={bridges / 'hostile'}" in who, who
            # No network of its own, granted hosts or not; the granted host through the node's proxy only.
            for server_name, target in [("hostile", port), ("netted", port), ("netted", web)]:
                direct = await client.call_tool(f"bridged.laptop.{server_name}.connect", {"host": "127.0.0.1", "port": target})
                assert direct.is_error, (server_name, target, text(direct))
            fetched = await client.call_tool("bridged.laptop.netted.fetch", {"url": f"http://127.0.0.1:{web}/"})
            assert text(fetched) == "hello from the host", text(fetched)
            tunneled = await client.call_tool("bridged.laptop.netted.tunnel", {"host": "127.0.0.1", "port": web})
            assert text(tunneled) == "hello from the host", text(tunneled)
            for url in [f"http://127.0.0.1:{port}/", f"http://not-granted.invalid:{web}/"]:
                refused = await client.call_tool("bridged.laptop.netted.fetch", {"url": url})
                assert refused.is_error and "403" in text(refused), (url, text(refused))
            refused = await client.call_tool("bridged.laptop.netted.tunnel", {"host": "127.0.0.1", "port": port})
            assert refused.is_error and "403" in text(refused), text(refused)
            alone = await client.call_tool("bridged.laptop.hostile.fetch", {"url": f"http://127.0.0.1:{web}/"})
            assert alone.is_error, text(alone)
            assert "proxy refused: not granted" in log.read_text()
            bomb = text(await client.call_tool("bridged.laptop.hostile.fork_bomb", {"children": 500}))
            assert bomb.startswith("forked") and int(bomb.split()[1].rstrip(",")) < 48, bomb
            memory = text(await client.call_tool("bridged.laptop.hostile.allocate", {"megabytes": 2048}))
            assert memory == "MemoryError for 2048 MiB", memory
            assert text(await client.call_tool("bridged.laptop.hostile.allocate", {"megabytes": 64})) == "allocated 64 MiB"
            # A flood on standard error and long progress messages: cut, and the node serves on.
            assert text(await client.call_tool("bridged.laptop.hostile.shout", {"megabytes": 64})) == "shouted"
            messages = []

            async def on_chatter(progress, total, message):
                messages.append(message)

            said = await client.call_tool("bridged.laptop.hostile.chatty", {}, progress_callback=on_chatter)
            assert text(said) == "said" and messages, messages[:1]
            assert max(len(m) for m in messages) <= 1024 and len(messages) < 200, len(messages)
            for _ in range(50):
                if "not utf-8" in log.read_text():
                    break
                await anyio.sleep(0.1)
            bridge_lines = [line for line in log.read_text().splitlines() if "toolmesh::bridge" in line]
            assert any("not utf-8" in line for line in bridge_lines), bridge_lines[-3:]
            assert max(len(line) for line in bridge_lines) < 1400
            # Still serving, every server.
            assert text(await client.call_tool("bridged.laptop.everything.echo", {"message": "on"})) == "Echo: on"

            # The tool list follows the server's list_changed.
            assert text(await client.call_tool("bridged.laptop.hostile.grow", {"name": "sprout"})) == "grew sprout"
            await until_listed(client, "bridged.laptop.hostile.sprout", seconds=10)
            assert text(await client.call_tool("bridged.laptop.hostile.sprout", {})) == "I am sprout"

            # A crash mid-call is a clear error; the server comes back.
            crashed = await client.call_tool("bridged.laptop.hostile.crash", {})
            assert crashed.is_error and "bridged server" in text(crashed), text(crashed)
            back = await until_answered(client, "bridged.laptop.hostile.whoami", {}, seconds=20, while_error="not running")
            assert not back.is_error and "uid=" in text(back)
            assert "bridged server stopped" in log.read_text()

            # The node killed: a clear error, then its tools leave the list.
            laptop.kill()
            laptop.wait(timeout=10)
            gone = await client.call_tool("bridged.laptop.everything.echo", {"message": "anyone?"})
            said = text(gone)
            assert gone.is_error and ("not reachable" in said or "lost" in said), said
            until = time.monotonic() + 10
            while any(t.name.startswith("bridged.laptop.") for t in (await client.list_tools()).tools):
                assert time.monotonic() < until, "the dead node's bridged tools are still listed"
                await anyio.sleep(0.2)
            with pytest.raises(Exception, match="unknown tool"):
                await client.call_tool("bridged.laptop.everything.echo", {"message": "anyone?"})
    listener.close()
    shutil.rmtree(outside)


@pytest.mark.anyio
async def test_tool_serve_bridges_and_refuses_without_a_sandbox(tmp_path):
    servers, policy, _ = bridge_files(tmp_path, "serve")
    # No bubblewrap on the PATH: the node refuses, and says how to opt out.
    refused = subprocess.run(
        [TOOL, "serve", "--data", str(tmp_path / "d1"), "--addr", "127.0.0.1:0", "--mcp-servers", str(servers),
         "--policy", str(policy)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": "/nonexistent"},
    )
    assert refused.returncode != 0
    assert "cannot sandbox bridged MCP servers" in refused.stderr and "unsandboxed = true" in refused.stderr, refused.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"mcpServers": {"x": {"url": "ftp://h"}}}')
    unusable = subprocess.run([TOOL, "serve", "--data", str(tmp_path / "d2"), "--mcp-servers", str(bad)],
                              capture_output=True, text=True, timeout=60)
    assert unusable.returncode != 0 and "server `x`" in unusable.stderr, unusable.stderr

    # A remote streamable HTTP server too: another `tool serve`'s endpoint.
    remote_dir = tmp_path / "remote"
    remote_dir.mkdir()
    with start_gateway(remote_dir) as (remote, *_):
        entries = json.loads(servers.read_text())
        entries["mcpServers"] = {"time": entries["mcpServers"]["time"], "far": {"url": f"{remote}/mcp"}}
        servers.write_text(json.dumps(entries))
        async with await_served(tmp_path, servers, policy) as (base, client):
            await until_listed(client, "bridged.local.far.examples.hello.greet", seconds=90)
            greeted = await client.call_tool("bridged.local.far.examples.hello.greet", {"name": "mesh"})
            assert not greeted.is_error and "mesh" in text(greeted), text(greeted)
            listed = {t.name: t for t in (await client.list_tools()).tools}
            far = listed["bridged.local.far.examples.hello.greet"]
            assert f"a remote MCP server at {remote.split('://')[1]}" in far.description, far.description
            await until_listed(client, "bridged.local.time.convert_time", seconds=90)
            converted = await client.call_tool(
                "bridged.local.time.convert_time",
                {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Kolkata"},
            )
            assert not converted.is_error, text(converted)
            assert converted.structured_content["target"]["datetime"].endswith("17:30:00+05:30")
            # Shown on the web pages and by `tool search`, marked for what it is.
            with urllib.request.urlopen(f"{base}/", timeout=30) as page:
                html = page.read().decode()
            assert "bridged.local.time" in html and "a native process in an OS sandbox" in html
            found = subprocess.run([TOOL, "search", "timezone", "--registry", base], capture_output=True, text=True,
                                   timeout=60)
            assert found.returncode == 0, found.stderr
            assert "bridged/local/time" in found.stdout and "a native process in an OS sandbox" in found.stdout
            assert "bridged/local/far" not in found.stdout, found.stdout


@contextlib.asynccontextmanager
async def await_served(tmp_path, servers, policy):
    """`tool serve` bridging `servers` under `policy`, and a client of it: yields (base URL, client)."""
    with start_gateway(tmp_path, "--mcp-servers", str(servers), "--policy", str(policy), timeout="10s") as (base, *_):
        async with mcp.Client(f"{base}/mcp") as client:
            yield base, client
