"""The gateway with the MCP Inspector CLI (`@modelcontextprotocol/inspector`),
over streamable HTTP in both protocol eras and over stdio.

Run by scripts/test.sh, which installs Node 22 and the Inspector and sets
TOOLMESH_INSPECTOR and TOOLMESH_NODE_BIN. Fixtures are in conftest.py.
"""

import json
import os
import subprocess

import pytest
from conftest import TOOL

INSPECTOR = os.environ["TOOLMESH_INSPECTOR"]
ENV = dict(os.environ, PATH=os.environ["TOOLMESH_NODE_BIN"] + os.pathsep + os.environ["PATH"])


def inspector(*args):
    done = subprocess.run([INSPECTOR, "--cli", *args], capture_output=True, text=True, timeout=120, env=ENV)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_lists_and_calls_over_http(gateway, era):
    base, _, _ = gateway
    code, out, err = inspector(f"{base}/mcp", "--protocol-era", era, "--method", "tools/list")
    assert code == 0, err
    names = sorted(t["name"] for t in json.loads(out)["tools"])
    assert len(names) == 17 and "examples.hello.greet" in names, names
    code, out, err = inspector(
        f"{base}/mcp", "--protocol-era", era, "--method", "tools/call", "--tool-name", "examples.text.slugify",
        "--tool-arg", "text=Inspector Works",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["content"][0]["text"] == "inspector-works" and result["isError"] is False
    code, _, _ = inspector(f"{base}/mcp", "--protocol-era", era, "--method", "tools/call", "--tool-name", "examples.nope")
    assert code == 5


def test_inspector_calls_over_stdio(gateway):
    _, data, _ = gateway
    code, out, err = inspector(
        "--method", "tools/call", "--tool-name", "examples.text.count", "--tool-args-json", '{"text": "a b c"}',
        "--", TOOL, "mcp", "--data", str(data),
    )
    assert code == 0, err
    assert json.loads(out)["structuredContent"] == {"characters": 5, "bytes": 5, "words": 3, "lines": 1}
