"""Grants end to end: `tool serve --policy FILE` with a real HTTP server on
loopback, tools published with their requests, called with the official
MCP SDK. Every reach a tool was not granted is refused with a reason that
names it, and the node goes on serving.

Fixtures are in conftest.py.
"""

import http.server
import socketserver
import threading
import time

import mcp
import pytest
import subprocess

from conftest import COMPONENTS, TOOL, publish_to, start_gateway, until_listed
from test_mcp import text_of


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes of the loopback server. Every sleep is bounded (3 s)."""

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", content_type="text/plain", headers=(), length=True):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        routes = {
            "/ok": lambda: self.send(200, b"hello from loopback"),
            "/json": lambda: self.send(200, b'{"answer": 42}', "application/json"),
            "/redirect-ok": lambda: self.send(302, headers=[("Location", "/ok")]),
            "/loop": lambda: self.send(302, headers=[("Location", "/loop")]),
            "/redirect-metadata": lambda: self.send(
                302, headers=[("Location", "http://169.254.169.254/latest/meta-data/")]
            ),
            "/redirect-localhost": lambda: self.send(302, headers=[("Location", f"http://localhost:{port}/ok")]),
            "/big": lambda: self.send(200, b"x" * (2 << 20)),
            # No Content-Length: the body ends when the connection closes.
            "/big-unsized": lambda: self.send(200, b"y" * (2 << 20), length=False),
        }
        if self.path in routes:
            routes[self.path]()
        elif self.path == "/slow":
            time.sleep(3)
            self.send(200, b"late")
        elif self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(3)
        else:
            self.send(404, b"no such page")

    def do_POST(self):
        self.send(200, b"posted")

    def do_DELETE(self):
        self.send(200, b"deleted")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that stopped reading (a refused body) is expected


@pytest.fixture
def web():
    """A plain HTTP server on 127.0.0.1; yields its port."""
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def policy(tmp_path, port):
    (tmp_path / "scratch").mkdir()
    path = tmp_path / "policy.toml"
    path.write_text(
        f"""
[network]
allow = ["http://127.0.0.1:{port}", "http://meta.test:{port}", "http://localhost:{port}"]
allow_private = false
max_requests = 3
max_response_bytes = "1MiB"
first_byte_timeout = "1s"
between_bytes_timeout = "1s"
resolve = {{ "meta.test" = "169.254.169.254" }}

[scratch]
allow = true
max_size = "4MiB"
dir = "{tmp_path / 'scratch'}"

[secrets]
API_KEY = {{ env = "TEST_NODE_KEY" }}
"""
    )
    return path


def manifest(tmp_path, name, permissions):
    path = tmp_path / f"{name}.toml"
    path.write_text("[permissions]\n" + permissions)
    return path


@pytest.mark.anyio
async def test_requests_are_granted_exactly_and_refusals_say_why(tmp_path, web, monkeypatch):
    monkeypatch.setenv("TEST_NODE_KEY", "s3cret-value")
    loopback = f"http://127.0.0.1:{web}"
    probe = manifest(
        tmp_path, "probe",
        f'network = [{{ host = "{loopback}", methods = ["GET", "POST"] }}, "http://meta.test:{web}", "http://localhost:{web}"]\n'
        'scratch = "4MiB"\nsecrets = ["API_KEY"]\n',
    )
    fetch = manifest(tmp_path, "fetch", f'network = ["{loopback}"]\n')
    greedy = manifest(tmp_path, "greedy", 'network = ["https://api.example.com"]\nsecrets = ["NOT_HELD"]\n')
    with start_gateway(tmp_path, "--policy", str(policy(tmp_path, web)), timeout="5s") as (base, data, log, _):
        publish_to(base, data, COMPONENTS / "probe.wasm", "test/probe", "1.0", "--manifest", str(probe))
        publish_to(base, data, COMPONENTS / "fetch.wasm", "test/fetch", "1.0", "--manifest", str(fetch))
        publish_to(base, data, COMPONENTS / "probe.wasm", "test/greedy", "1.0", "--manifest", str(greedy))
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            tools = await until_listed(client, "test.greedy.env")

            # What each tool asks for is in its description and its _meta.
            listed = tools["test.fetch.fetch"]
            assert f"Requests: network: GET {loopback}." in listed.description
            assert listed.meta["dev.toolmesh/requests"]["network"][0]["host"] == "127.0.0.1"
            assert "network: GET https://example.com" in tools["examples.fetch.fetch"].description
            assert "scratch directory: 32 MiB" in tools["examples.archive.unpack"].description

            async def ok(tool, args):
                result = await client.call_tool(tool, args)
                assert not result.is_error, (tool, args, text_of(result))
                return result

            async def refused(tool, args, *needles):
                result = await client.call_tool(tool, args)
                assert result.is_error, (tool, args, text_of(result))
                for needle in needles:
                    assert needle in text_of(result), (needle, text_of(result))

            # Granted: a host, a method, redirects on it, JSON.
            fetched = await ok("test.fetch.fetch", {"url": f"{loopback}/redirect-ok"})
            assert fetched.structured_content["text"] == "hello from loopback"
            assert fetched.structured_content["redirects"] == 1
            assert (await ok("test.fetch.fetch", {"url": f"{loopback}/json"})).structured_content["json"] == {"answer": 42}
            assert (await ok("test.probe.http", {"url": f"{loopback}/ok", "method": "POST"})).structured_content["status"] == 200

            # Not granted: another host, another method, redirects off the grant.
            await refused("test.probe.http", {"url": "http://127.0.0.2:9/"}, "HttpRequestDenied", "GET http://127.0.0.2:9/ is not granted")
            await refused("test.probe.http", {"url": f"{loopback}/ok", "method": "DELETE"}, "HttpRequestDenied", "DELETE")
            await refused("test.fetch.fetch", {"url": f"{loopback}/redirect-metadata"}, "HttpRequestDenied", "169.254.169.254")
            await refused("test.fetch.fetch", {"url": f"{loopback}/redirect-localhost"}, "HttpRequestDenied", "localhost")
            # 127.0.0.1 is named in the policy's allow, so it is reached
            # without allow_private; a granted name resolving to loopback is not.
            await refused(
                "test.probe.http", {"url": f"http://localhost:{web}/ok"},
                "DestinationIpProhibited", "localhost resolves to", "a loopback address",
            )
            # A granted name that resolves to the metadata address.
            await refused(
                "test.probe.http", {"url": f"http://meta.test:{web}/latest"},
                "DestinationIpProhibited", "meta.test resolves to 169.254.169.254, a cloud metadata address",
            )
            # Caps: requests per call (the fourth hop of a redirect loop),
            await refused("test.fetch.fetch", {"url": f"{loopback}/loop"}, "ConnectionLimitReached", "3 requests are spent")
            # response bytes (declared and undeclared), first byte, pauses.
            await refused("test.probe.http", {"url": f"{loopback}/big"}, "HttpResponseBodySize", "response cap")
            await refused("test.probe.http", {"url": f"{loopback}/big-unsized"}, "body size exceeds", "response cap")
            started = time.monotonic()
            await refused("test.probe.http", {"url": f"{loopback}/slow"}, "ConnectionReadTimeout", "no response within 1s")
            await refused("test.probe.http", {"url": f"{loopback}/stall"}, "read timeout", "paused longer than 1s")
            assert time.monotonic() - started < 4.5, "each wait was cut at the policy's 1 s"

            # Scratch: inside works, the way out does not, the size is capped.
            assert text_of(await ok("test.probe.write_file", {"path": "/scratch/a", "bytes": 1000})) == "wrote 1000 bytes"
            await refused("test.probe.read_file", {"path": "/scratch/../etc/passwd"}, "tool failed")
            await refused("test.probe.read_file", {"path": "/etc/passwd"}, "tool failed")
            await refused("test.probe.symlink", {"target": "/etc", "link": "/scratch/l", "read": "/scratch/l/passwd"}, "not-permitted")
            await refused(
                "test.probe.symlink", {"target": "../../../../../../etc", "link": "/scratch/l", "read": "/scratch/l/passwd"},
                "tool failed",
            )
            await refused("test.probe.write_file", {"path": "/scratch/big", "bytes": 64 << 20}, "scratch directory past its size of 4 MiB")
            await refused("test.probe.write_unlinked", {"path": "/scratch/gone", "bytes": 16 << 20}, "past its size of 4 MiB")

            # Secrets: only the granted one, nothing else of the node's environment.
            assert text_of(await ok("test.probe.env", {"name": "API_KEY"})) == "s3cret-value"
            assert text_of(await ok("test.probe.env_names", {})) == "API_KEY"
            await refused("test.probe.env", {"name": "TEST_NODE_KEY"}, "not set")

            # A request the node cannot cover is refused before it runs, naming each part.
            await refused(
                "test.greedy.env", {"name": "NOT_HELD"},
                "does not grant", "network GET https://api.example.com", "secret NOT_HELD",
            )
            # The built-in examples that ask for more than this policy gives.
            await refused("examples.fetch.fetch", {"url": "https://example.com/"}, "network GET https://example.com")

            # And the node keeps serving.
            assert text_of(await ok("examples.hello.greet", {"name": "after"})) == "Hello, after!"
        assert "s3cret-value" not in log.read_text(), "secrets never reach the log"
    assert not list((tmp_path / "scratch").iterdir()), "every call's scratch directory was deleted"


@pytest.mark.anyio
async def test_the_builtin_policy_grants_nothing(tmp_path, web):
    loopback = f"http://127.0.0.1:{web}"
    fetch = manifest(tmp_path, "fetch", f'network = ["{loopback}"]\n')
    with start_gateway(tmp_path) as (base, data, log, _):
        assert "this node grants tools: network: none; scratch: none" in log.read_text()
        publish_to(base, data, COMPONENTS / "fetch.wasm", "test/fetch", "1.0", "--manifest", str(fetch))
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "test.fetch.fetch")
            result = await client.call_tool("test.fetch.fetch", {"url": f"{loopback}/ok"})
            assert result.is_error
            assert f"network GET {loopback} (not in the policy's [network] allow)" in text_of(result)
            result = await client.call_tool("examples.archive.unpack", {"archive": ""})
            assert result.is_error and "a scratch directory" in text_of(result)


@pytest.mark.anyio
async def test_a_policy_runs_only_tools_signed_by_the_publishers_it_trusts(tmp_path):
    keys = {}
    for who in ["trusted", "stranger"]:
        done = subprocess.run([TOOL, "keygen", "-o", str(tmp_path / f"{who}.key")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        keys[who] = tmp_path / f"{who}.key"
    public = (tmp_path / "trusted.key.pub").read_text().strip()
    path = tmp_path / "policy.toml"
    path.write_text(f'[publishers]\nallow_unsigned = false\ntrusted = ["{public}"]\n')
    with start_gateway(tmp_path, "--policy", str(path)) as (base, data, _, _):
        for who, key in keys.items():
            publish_to(base, data, COMPONENTS / "hello.wasm", f"{who}/hello", "1.0", "--key", str(key))
        publish_to(base, data, COMPONENTS / "hello.wasm", "loose/hello", "1.0", "--unsigned")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "loose.hello.greet")
            signed = await client.call_tool("trusted.hello.greet", {"name": "key"})
            assert not signed.is_error and text_of(signed) == "Hello, key!"
            stranger = await client.call_tool("stranger.hello.greet", {"name": "key"})
            assert stranger.is_error and "no signature this node's policy trusts" in text_of(stranger), text_of(stranger)
            # The examples are signed by the server's own key, which this policy does not trust.
            example = await client.call_tool("examples.hello.greet", {"name": "key"})
            assert example.is_error and "no signature this node's policy trusts" in text_of(example), text_of(example)
            unsigned = await client.call_tool("loose.hello.greet", {"name": "key"})
            assert unsigned.is_error and "it is not signed" in text_of(unsigned), text_of(unsigned)


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 that no root vouches for, and its key."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.anyio
async def test_tls_is_verified_against_the_web_roots(tmp_path):
    import ssl

    cert, key = self_signed(tmp_path)
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        path = tmp_path / "policy.toml"
        path.write_text(f'[network]\nallow = ["https://127.0.0.1:{port}"]\n')
        probe = manifest(tmp_path, "probe", f'network = ["https://127.0.0.1:{port}"]\n')
        with start_gateway(tmp_path, "--policy", str(path)) as (base, data, _, _):
            publish_to(base, data, COMPONENTS / "probe.wasm", "test/probe", "1.0", "--manifest", str(probe))
            async with mcp.Client(f"{base}/mcp", mode="auto") as client:
                await until_listed(client, "test.probe.http")
                # The address is granted; the certificate is signed by no one the node trusts.
                result = await client.call_tool("test.probe.http", {"url": f"https://127.0.0.1:{port}/ok"})
                assert result.is_error, text_of(result)
                assert "TlsProtocolError" in text_of(result) and "UnknownIssuer" in text_of(result), text_of(result)
    finally:
        server.shutdown()
        server.server_close()
