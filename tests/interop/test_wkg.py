"""Independent OCI clients against the toolmesh registry: `wkg` (wasm-pkg-tools).

Fixtures are in conftest.py.
"""

import os
import subprocess

from conftest import COMPONENTS, TOKEN, tool

WKG = os.environ["TOOLMESH_WKG"]


def wkg(host, *args):
    env = dict(os.environ, WKG_OCI_USERNAME="interop", WKG_OCI_PASSWORD=TOKEN, WKG_OCI_INSECURE=host)
    return subprocess.run([WKG, "oci", *args], capture_output=True, text=True, timeout=120, env=env)


def test_wkg_pulls_what_tool_published_byte_identical(registry, tmp_path):
    wasm = COMPONENTS / "markdown.wasm"
    published = tool(registry, "publish", str(wasm), "--name", "interop/markdown", "--version", "1.0")
    assert published.returncode == 0, published.stderr
    out = tmp_path / "pulled.wasm"
    pulled = wkg(registry, "pull", f"{registry}/interop/markdown:1.0", "-o", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert out.read_bytes() == wasm.read_bytes()


def test_tool_pulls_and_runs_what_wkg_pushed(registry, tmp_path):
    wasm = COMPONENTS / "text.wasm"
    pushed = wkg(registry, "push", f"{registry}/interop/wkg-text:0.3.0", str(wasm))
    assert pushed.returncode == 0, pushed.stderr
    out = tmp_path / "pulled.wasm"
    pulled = tool(registry, "pull", "interop/wkg-text:0.3.0", "-o", str(out))
    assert pulled.returncode == 0, pulled.stderr
    assert out.read_bytes() == wasm.read_bytes()
    ran = tool(registry, "run", "interop/wkg-text:0.3.0", "slugify", "--args", '{"text": "Pushed by wkg"}')
    assert (ran.returncode, ran.stdout) == (0, "pushed-by-wkg\n"), ran.stderr
