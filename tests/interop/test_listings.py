"""Registry listings and the server card: a small client written here
against the MCP Registry's published OpenAPI shapes (`ServerList`,
`ServerResponse`, `ServerDetail`, `StreamableHttpTransport`) and SEP-2127's
server card reads `tool serve`, follows the pages, and connects to the
remote an entry names with the official MCP SDK.

Fixtures are in conftest.py.
"""

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import anyio
import mcp
import pytest
from conftest import start_gateway

NAME = re.compile(r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$")


@pytest.fixture
def anyio_backend():
    return "asyncio"


def get(base, path):
    """(status, JSON body) of GET base+path."""
    try:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            assert response.headers["content-type"].startswith("application/json")
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def check_server_response(entry, base):
    """An entry as `ServerResponse` requires: a `ServerDetail` with its
    required fields in their bounds, and a streamable-HTTP remote here."""
    server = entry["server"]
    assert NAME.match(server["name"]) and 3 <= len(server["name"]) <= 200, server["name"]
    assert 1 <= len(server["description"]) <= 100, server["description"]
    assert server["version"] and len(server["version"]) <= 255
    assert server["$schema"].startswith("https://static.modelcontextprotocol.io/schemas/")
    (remote,) = server["remotes"]
    assert remote == {"type": "streamable-http", "url": f"{base}/mcp"}, remote
    official = entry["_meta"]["io.modelcontextprotocol.registry/official"]
    assert official["status"] == "active" and official["isLatest"] is True


def every_entry(base, limit):
    """Every entry of GET /v0/servers, page by page, with the pages' counts."""
    entries, cursor, pages = [], None, 0
    for _ in range(100):
        query = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        status, page = get(base, "/v0/servers?" + urllib.parse.urlencode(query))
        assert status == 200, page
        assert page["metadata"]["count"] == len(page["servers"]) <= limit
        entries += page["servers"]
        pages += 1
        cursor = page["metadata"].get("nextCursor")
        if not cursor:
            return entries, pages
    raise AssertionError("the pages never end")


@pytest.mark.anyio
async def test_directories_find_the_gateway_and_its_packages(tmp_path):
    with start_gateway(tmp_path) as (base, _, _, _):
        entries, pages = every_entry(base, 2)
        names = [e["server"]["name"] for e in entries]
        assert names == sorted(set(names)) and pages == -(-len(entries) // 2), names
        for entry in entries:
            check_server_response(entry, base)
        gateway = next(e["server"] for e in entries if e["server"]["name"] == "127.0.0.1/toolmesh")
        assert gateway["name"] == "127.0.0.1/toolmesh"
        hello = next(e["server"] for e in entries if e["server"]["name"] == "127.0.0.1/examples.hello")
        tools = hello["_meta"]["io.modelcontextprotocol.registry/publisher-provided"]["dev.toolmesh/tools"]
        assert tools == ["examples.hello.greet"]
        # The same over /v0.1, and one page of everything.
        status, whole = get(base, "/v0.1/servers?limit=100")
        assert status == 200 and [e["server"]["name"] for e in whole["servers"]] == names
        assert "nextCursor" not in whole["metadata"]

        # Search and versions.
        status, found = get(base, "/v0/servers?search=HELLO")
        assert [e["server"]["name"] for e in found["servers"]] == ["127.0.0.1/examples.hello"]
        quoted = urllib.parse.quote(hello["name"], safe="")
        status, versions = get(base, f"/v0/servers/{quoted}/versions")
        assert status == 200 and [e["server"]["version"] for e in versions["servers"]] == [hello["version"]]
        for version in ("latest", hello["version"]):
            status, one = get(base, f"/v0/servers/{quoted}/versions/{version}")
            assert status == 200 and one["server"] == hello
        assert get(base, f"/v0/servers/{quoted}/versions/9.9.9") == (404, {"error": "Server version not found"})
        assert get(base, "/v0/servers/nobody%2Fnothing/versions") == (404, {"error": "Server not found"})

        # The remote an entry names serves the tools it lists.
        async with mcp.Client(hello["remotes"][0]["url"], mode="auto") as client:
            listed = {t.name for t in (await client.list_tools(cache_mode="bypass")).tools}
            assert set(tools) <= listed
            greeting = await client.call_tool("examples.hello.greet", {"name": "directory"})
            assert greeting.content[0].text == "Hello, directory!"

        # The server card: the remote, the capabilities, what anyone may use.
        status, card = get(base, "/.well-known/mcp/server-card.json")
        assert status == 200 and card["name"] == gateway["name"]
        (remote,) = card["remotes"]
        assert remote["url"] == f"{base}/mcp" and "2026-07-28" in remote["supportedProtocolVersions"]
        assert "authentication" not in remote
        assert card["capabilities"]["resources"] == {"subscribe": True, "listChanged": True}
        card_tools = {t["name"]: t for t in card["tools"]}
        assert card_tools["examples.hello.greet"]["inputSchema"]["required"] == ["name"]
        assert any(r["uri"] == "toolmesh://examples/markdown/markdown://guide" for r in card["resources"])


def test_a_gateway_that_needs_a_key_says_so_and_lists_no_tools(tmp_path):
    with start_gateway(tmp_path, "--api-key", "sesame") as (base, _, _, _):
        status, card = get(base, "/.well-known/mcp/server-card")
        assert status == 200 and card["tools"] == [] and card["prompts"] == []
        assert card["remotes"][0]["authentication"] == {"required": True, "schemes": ["bearer"]}
        status, page = get(base, "/v0/servers?limit=1")
        remote = page["servers"][0]["server"]["remotes"][0]
        assert remote["authentication"]["required"] is True
        assert remote["headers"][0]["name"] == "Authorization" and remote["headers"][0]["isSecret"] is True
