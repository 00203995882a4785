"""Independent OCI clients against the toolmesh registry: the Python `oras` SDK.

Fixtures are in conftest.py.
"""

import hashlib
import json
import pathlib
import shutil

import oras.client
import pytest
from conftest import COMPONENTS, TOKEN, tool


def oras_client(host):
    client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
    client.login(username="interop", password=TOKEN, hostname=host)
    return client


def test_oras_pulls_what_tool_published_byte_identical(registry, tmp_path):
    wasm = COMPONENTS / "text.wasm"
    published = tool(registry, "publish", str(wasm), "--name", "interop/text", "--version", "1.0")
    assert published.returncode == 0, published.stderr
    files = oras_client(registry).pull(target=f"{registry}/interop/text:1.0", outdir=str(tmp_path / "out"))
    assert [pathlib.Path(f).name for f in files] == ["text.wasm"]
    assert pathlib.Path(files[0]).read_bytes() == wasm.read_bytes()
    # And by digest.
    digest = published.stdout.strip().split("@")[1]
    files = oras_client(registry).pull(target=f"{registry}/interop/text@{digest}", outdir=str(tmp_path / "by-digest"))
    assert pathlib.Path(files[0]).read_bytes() == wasm.read_bytes()


def test_tool_pulls_and_runs_what_oras_pushed_in_chunks(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(COMPONENTS / "hello.wasm", "hello.wasm")
    layer_digest = "sha256:" + hashlib.sha256(pathlib.Path("hello.wasm").read_bytes()).hexdigest()
    pathlib.Path("config.json").write_text(
        json.dumps({"architecture": "wasm", "os": "wasip2", "layerDigests": [layer_digest]})
    )
    oras_client(registry).push(
        target=f"{registry}/interop/hello:2.0",
        files=["hello.wasm:application/wasm"],
        manifest_config="config.json:application/vnd.wasm.config.v0+json",
        do_chunked=True,
        chunk_size=64 * 1024,
        disable_path_validation=True,
    )
    pulled = tool(registry, "pull", "interop/hello:2.0", "-o", str(tmp_path / "pulled.wasm"))
    assert pulled.returncode == 0, pulled.stderr
    assert (tmp_path / "pulled.wasm").read_bytes() == (COMPONENTS / "hello.wasm").read_bytes()
    ran = tool(registry, "run", "interop/hello:2.0", "greet", "--args", '{"name": "oras"}')
    assert (ran.returncode, ran.stdout) == (0, "Hello, oras!\n"), ran.stderr


def test_oras_sees_spec_errors(registry):
    client = oras_client(registry)
    with pytest.raises(Exception) as failure:
        client.pull(target=f"{registry}/interop/missing:1.0", outdir="/tmp/never-written")
    assert "MANIFEST_UNKNOWN" in str(failure.value) or "404" in str(failure.value) or "not found" in str(failure.value).lower()
