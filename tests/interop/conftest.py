"""Shared fixtures of the interop tests: a real `tool registry serve` process
and a way to run `tool` against it.

Run by scripts/test.sh with TOOLMESH_TOOL (the `tool` binary),
TOOLMESH_COMPONENTS (the built components) and TOOLMESH_WKG set.
"""

import os
import pathlib
import re
import subprocess
import threading

import pytest

TOOL = os.environ["TOOLMESH_TOOL"]
COMPONENTS = pathlib.Path(os.environ["TOOLMESH_COMPONENTS"])
TOKEN = "interop-token"


@pytest.fixture
def registry(tmp_path):
    """A `tool registry serve` process on a loopback port; yields host:port."""
    proc = subprocess.Popen(
        [TOOL, "registry", "serve", "--dir", str(tmp_path / "data"), "--addr", "127.0.0.1:0", "--push-token", TOKEN],
        stderr=subprocess.PIPE,
        text=True,
    )
    host = None
    for line in proc.stderr:
        match = re.search(r"listening on http://(\S+)", line)
        if match:
            host = match.group(1)
            break
    assert host, "the registry did not start"
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    yield host
    proc.kill()
    proc.wait(timeout=10)


def tool(host, *args):
    return subprocess.run(
        [TOOL, *args, "--registry", f"http://{host}", "--token", TOKEN], capture_output=True, text=True, timeout=120
    )
