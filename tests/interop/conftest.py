"""Shared fixtures of the interop tests: a real `tool registry serve` process
and a way to run `tool` against it.

Run by scripts/test.sh with TOOLMESH_TOOL (the `tool` binary),
TOOLMESH_COMPONENTS (the built components) and TOOLMESH_WKG set.
"""

import contextlib
import datetime
import http.server
import ipaddress
import json
import os
import pathlib
import re
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOOL = os.environ["TOOLMESH_TOOL"]
COMPONENTS = pathlib.Path(os.environ["TOOLMESH_COMPONENTS"])
TOKEN = "interop-token"


def _temp_dir(prefix):
    """A private directory removed when the suite ends."""
    import atexit
    import shutil
    import tempfile

    dir = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, dir, True)
    return dir


def _shared_compile_cache():
    """One compile cache for every `tool` process the suite starts (through
    TOOLMESH_CONFIG, which `--config` overrides): each component is compiled
    once per run, not once per test."""
    root = _temp_dir("toolmesh-suite-")
    (root / "sandbox.toml").write_text(f'cache_dir = "{root / "compiled"}"\n')
    os.environ["TOOLMESH_CONFIG"] = str(root / "sandbox.toml")
    return root / "compiled"


COMPILE_CACHE = _shared_compile_cache()
# Every `tool` the suite starts has a data directory of its own unless told
# (`--data`): a local `tool serve`'s push token is never picked up.
os.environ["TOOLMESH_DATA"] = str(_temp_dir("toolmesh-data-"))
# ... and a configuration directory of its own: `tool publish` signs with a
# publisher key made there on first use, never a developer's own.
CONFIG_DIR = _temp_dir("toolmesh-config-")
os.environ["TOOLMESH_CONFIG_DIR"] = str(CONFIG_DIR)
for variable in ["TOOLMESH_REGISTRY", "TOOLMESH_TOKEN"]:
    os.environ.pop(variable, None)


def wait_until_compiled(*names, seconds=300):
    """Waits (bounded) until the shared compile cache holds optimised code
    of the components `names` (`tool serve` compiles its catalog in the
    background at start), so a test's timing does not include compiles."""
    import hashlib

    wanted = {hashlib.sha256((COMPONENTS / f"{n}.wasm").read_bytes()).hexdigest() for n in names}
    until = time.monotonic() + seconds
    while not wanted <= {p.name.split("-")[0] for p in COMPILE_CACHE.glob("*.cwasm")}:
        assert time.monotonic() < until, f"{names} were never compiled"
        time.sleep(0.1)


# The examples written with the Python and TypeScript SDKs (CPython and
# SpiderMonkey inside: slow to publish and compile); their own test serves them.
SDK_EXAMPLES = ("tables.wasm", "cron.wasm")
# Examples that are slow to publish and compile: `model.wasm` (90 MB of
# weights), `python.wasm` (CPython, 20 MB) and the SDK examples.
HEAVY = {"model.wasm", "python.wasm", *SDK_EXAMPLES}
_examples = {}


def examples_without(*skipped):
    """A directory of the built components less `skipped`, made once."""
    if skipped not in _examples:
        dir = _temp_dir("toolmesh-examples-")
        for component in COMPONENTS.glob("*.wasm"):
            if component.name not in skipped:
                (dir / component.name).symlink_to(component)
        _examples[skipped] = dir
    return _examples[skipped]


def light_examples():
    """The built components less the heavy ones, which every `tool serve`
    would publish and compile: what most tests serve; the model's own tests
    pass all but the SDK examples, the code execution tests `code_examples()`."""
    return examples_without(*sorted(HEAVY))


def code_examples():
    """The built components with the interpreters, less the model and the SDK examples."""
    return examples_without("model.wasm", *SDK_EXAMPLES)


@pytest.fixture
def registry(tmp_path):
    """A `tool registry serve` process on a loopback port; yields host:port."""
    proc = subprocess.Popen(
        [TOOL, "registry", "serve", "--dir", str(tmp_path / "data"), "--addr", "127.0.0.1:0", "--push-token", TOKEN],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        host = None
        for line in proc.stderr:
            match = re.search(r"listening on http://(\S+)", line)
            if match:
                host = match.group(1)
                break
        assert host, "the registry did not start"
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        yield host
    finally:
        stop(proc)


def stop(proc):
    """Kills a process this suite started and waits for it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def tool(host, *args):
    return subprocess.run(
        [TOOL, *args, "--registry", f"http://{host}", "--token", TOKEN], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def gateway(tmp_path):
    """`tool serve` (registry + gateway + node) on a loopback port, with the
    examples published and calls limited to 1 s; yields (base URL, data dir, log path)."""
    with start_gateway(tmp_path) as (base, data, log, _):
        yield base, data, log


@contextlib.contextmanager
def start_gateway(tmp_path, *extra, examples=None, wait=True, timeout="1s", addr="127.0.0.1:0"):
    """Runs `tool serve` with `extra` flags for the `with` block, yielding
    (base URL, data dir, log path, process); the process is killed when the
    block ends, however it ends. With `wait=False` it yields at once, before
    the server listens (the base URL is then None)."""
    examples = examples or light_examples()
    data = tmp_path / "data"
    log = tmp_path / "serve.log"
    args = [TOOL, "serve", "--data", str(data), "--addr", addr, "--examples", str(examples), "--timeout", timeout]
    with open(log, "w") as sink:
        proc = subprocess.Popen([*args, *extra], stderr=sink, stdout=subprocess.DEVNULL)
    try:
        base = None
        for _ in range(600 if wait else 0):
            match = re.search(r"listening on (http://\S+)", log.read_text())
            if match:
                base = match.group(1)
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert base or not wait, "tool serve did not start:\n" + log.read_text()
        yield base, data, log, proc
    finally:
        stop(proc)


def publish_to(base, data, component, name, version, *extra):
    """Publishes a component into a running `tool serve` (`extra`: more
    `tool publish` flags, such as `--manifest FILE` or `--key FILE`)."""
    token = (data / "push-token").read_text().strip()
    done = subprocess.run(
        [TOOL, "publish", str(component), "--name", name, "--version", version, "--registry", base, "--token", token,
         *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def until_listed(client, name, seconds=10):
    """Waits (bounded) until an MCP client's tool list has `name`; returns the list by name."""
    import anyio

    until = time.monotonic() + seconds
    while True:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        if name in tools:
            return tools
        assert time.monotonic() < until, f"{name} never listed"
        await anyio.sleep(0.05)


async def until_answered(client, tool, args, seconds=10, while_error=None):
    """Calls `tool` until it answers without error (bounded), returning the
    last result; with `while_error` (a text, or a tuple of texts), only
    errors holding one of them are waited out."""
    import anyio

    until = time.monotonic() + seconds
    while True:
        result = await client.call_tool(tool, args)
        if not result.is_error or time.monotonic() > until:
            return result
        text = "".join(c.text for c in result.content if c.type == "text")
        waited = (while_error,) if isinstance(while_error, str) else while_error
        assert waited is None or any(w in text for w in waited), text
        await anyio.sleep(0.2)


def certificate(subject, issuer_name, key, signer, ca, **sans):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        names = [x509.DNSName(d) for d in sans.get("dns", [])] + [x509.IPAddress(ipaddress.ip_address(i)) for i in sans.get("ips", [])]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def private_ca(dir):
    """A CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("toolmesh test CA", "toolmesh test CA", ca_key, ca_key, True)
    server = certificate("nats", "toolmesh test CA", server_key, ca_key, False, dns=["localhost"], ips=["127.0.0.1"])
    pem = serialization.Encoding.PEM
    (dir / "ca.pem").write_bytes(ca.public_bytes(pem))
    (dir / "server.pem").write_bytes(server.public_bytes(pem))
    (dir / "server.key").write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return dir / "ca.pem"


def run_tool(*args, cwd=None):
    """Runs `tool` with `args` (in `cwd`), bounded; returns the completed process."""
    return subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def tool_project(tmp_path, files):
    """A tool's source directory holding `files` (name → text, dedented)."""
    import textwrap

    dir = tmp_path / "proj"
    dir.mkdir()
    for name, text in files.items():
        (dir / name).write_text(textwrap.dedent(text))
    return dir


def build_new_tool(tmp_path, name, lang):
    """`tool new NAME --lang LANG`, then the project's own `test.sh` (which
    builds it and calls its example tool) with `tool` on the PATH; returns
    the component's path and what the build printed on stderr."""
    made = run_tool("new", name, "--lang", lang, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    path = f"{pathlib.Path(TOOL).parent}:{os.environ['PATH']}"
    tested = subprocess.run(["./test.sh"], capture_output=True, text=True, timeout=300, cwd=tmp_path / name,
                            env={**os.environ, "PATH": path})
    assert tested.returncode == 0 and tested.stdout.endswith("ok\n"), tested.stdout + tested.stderr
    return tmp_path / name / f"{name}.wasm", tested.stderr


async def check_progress_and_log(tmp_path, dir):
    """Builds the project in `dir`, whose tool `work(steps)` reports each
    step as progress and then logs "all steps done": the log line reaches
    the node's log (`tool run -v`), the progress an MCP client."""
    import mcp

    built = run_tool("build", str(dir))
    assert built.returncode == 0, built.stderr
    component = built.stdout.strip()
    done = run_tool("run", component, "work", "-v", "-a", '{"steps": 2}')
    assert done.returncode == 0 and "all steps done" in done.stderr, done.stderr
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    with start_gateway(tmp_path) as (base, data, _log, _proc):
        publish_to(base, data, component, "demo/work", "0.1.0")
        async with mcp.Client(f"{base}/mcp") as client:
            await until_listed(client, "demo.work.work")
            result = await client.call_tool("demo.work.work", {"steps": 3}, progress_callback=on_progress)
    assert result.content[0].text == "3 steps"
    assert seen and seen[-1] == (3.0, 3.0, "step 3"), seen


@contextlib.contextmanager
def json_server(answer):
    """A loopback HTTP server that answers each GET and POST with JSON:
    `answer(method, path, content_type, body_text)` gives (status, value).
    Yields its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def respond(self):
            sent = self.rfile.read(int(self.headers.get("content-length") or 0)).decode()
            status, value = answer(self.command, self.path, self.headers.get("content-type"), sent)
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = respond

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


async def check_notes_package(client):
    """The checks both SDKs' notes packages pass (tests of test_sdk_python
    and test_sdk_js): resources fixed and templated, a missing one, a
    prompt with an embedded resource, every kind of content, a question, a
    tool that may run as a task and reports a resource changed."""
    import anyio
    import mcp
    from mcp.client.subscriptions import ResourceUpdated

    readme = (await client.read_resource("toolmesh://demo/notes/notes://readme")).contents[0]
    assert (readme.text, readme.mime_type) == ("# Notes", "text/markdown")
    intro = (await client.read_resource("toolmesh://demo/notes/notes://pages/intro")).contents[0]
    assert intro.text == "Welcome."
    try:
        await client.read_resource("toolmesh://demo/notes/notes://pages/nope")
        raise AssertionError("a missing page was read")
    except mcp.MCPError as missing:
        assert missing.error.code == -32602
    filled = await client.get_prompt("demo.notes.review", {"text": "draft one"})
    assert filled.messages[0].content.resource.text == "draft one"
    assert filled.messages[1].content.text == "Review it, kindly."
    media = (await client.call_tool("demo.notes.media", {})).content
    assert [c.type for c in media] == ["text", "audio", "resource", "resource_link"]
    assert media[2].resource.blob == "AAE="
    assert (await client.call_tool("demo.notes.greet", {})).content[0].text == "Hello, Ada!"
    listed = {t.name: t for t in (await client.list_tools(cache_mode="bypass")).tools}
    assert listed["demo.notes.touch"].meta["dev.toolmesh/taskSupport"] == "optional"
    assert "x-toolmesh-task" not in listed["demo.notes.touch"].input_schema
    intro = "toolmesh://demo/notes/notes://pages/intro"
    asked = [intro, "toolmesh://demo/notes/notes://unknown", "other://not-ours"]
    async with client.listen(resource_subscriptions=asked) as subscription:
        assert subscription.honored.resource_subscriptions == [intro]
        assert (await client.call_tool("demo.notes.touch", {"slug": "intro"})).content[0].text == "touched intro"
        with anyio.fail_after(10):
            async for event in subscription:
                assert event == ResourceUpdated(uri=intro)
                break
