"""A real CNCF distribution registry (Debian's `docker-registry`) behind
TLS from a private CA as the only registry: `tool publish`, `pull` and
`search` with htpasswd (Basic) credentials, then a NATS node and gateway
serving MCP calls from it; and the OCI token flow, with a token service
written here that issues the JWTs distribution verifies.

Each wrong credential or missing CA ends in a clear error.
"""

import base64
import datetime
import json
import os
import secrets
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
import mcp
import pytest
from conftest import COMPONENTS, TOOL, private_ca, stop, until_listed
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from test_mcp import text_of
from test_mesh import Mesh, free_port, wait_for

DISTRIBUTION = os.environ["TOOLMESH_DISTRIBUTION"]
USER, PASSWORD = "publisher", "correct horse battery staple"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def start_distribution(tmp_path, auth):
    """Starts distribution on a loopback port with TLS and `auth` (YAML);
    yields its https base URL and the CA file."""
    ca = tmp_path / "ca.pem" if (tmp_path / "ca.pem").exists() else private_ca(tmp_path)
    port = free_port()
    config = tmp_path / "distribution.yml"
    config.write_text(f"""
version: 0.1
log: {{ level: info }}
storage: {{ filesystem: {{ rootdirectory: "{tmp_path / 'blobs'}" }} }}
http:
  addr: 127.0.0.1:{port}
  tls: {{ certificate: "{tmp_path / 'server.pem'}", key: "{tmp_path / 'server.key'}" }}
{auth}
""")
    log = tmp_path / "distribution.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen([DISTRIBUTION, "serve", str(config)], stdout=sink, stderr=subprocess.STDOUT)
    wait_for(log, "listening on", proc)
    return proc, f"https://127.0.0.1:{port}", ca


def tool(*argv, ok=True):
    done = subprocess.run([TOOL, *argv], capture_output=True, text=True, timeout=120)
    assert (done.returncode == 0) == ok, (argv, done.returncode, done.stderr)
    return done


@pytest.mark.anyio
async def test_distribution_with_htpasswd_over_tls_is_the_only_registry(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    proc, base, ca = start_distribution(tmp_path, f'auth: {{ htpasswd: {{ realm: toolmesh-test, path: "{htpasswd}" }} }}')
    try:
        login = ["--registry", base, "--registry-ca", str(ca), "--registry-user", USER, "--registry-password", PASSWORD]
        hello = str(COMPONENTS / "hello.wasm")
        # Wrong password, and no trust in the private CA: clear refusals.
        wrong = tool("publish", hello, "--name", "test/hello", "--version", "1.0", "--registry", base,
                     "--registry-ca", str(ca), "--registry-user", USER, "--registry-password", "wrong", ok=False)
        assert "401" in wrong.stderr, wrong.stderr
        untrusted = tool("pull", "test/hello:1.0", "--registry", base, ok=False)
        assert "certificate" in untrusted.stderr.lower(), untrusted.stderr

        key = tmp_path / "publisher.key"
        tool("keygen", "-o", str(key))
        tool("publish", hello, "--name", "test/hello", "--version", "1.0", "--key", str(key), *login)
        # Signed: distribution 2.8 has no referrers API, so the signature is
        # listed under the OCI 1.1 fallback tag, and found there.
        pulled = tmp_path / "pulled.wasm"
        tool("pull", "test/hello:1.0", "-o", str(pulled), "--trust", f"{key}.pub", *login)
        assert pulled.read_bytes() == (COMPONENTS / "hello.wasm").read_bytes()
        stranger = tmp_path / "stranger.key"
        tool("keygen", "-o", str(stranger))
        untrusted_key = tool("pull", "test/hello:1.0", "-o", str(pulled), "--trust", f"{stranger}.pub", *login, ok=False)
        assert "sign" in untrusted_key.stderr.lower(), untrusted_key.stderr
        # The catalog comes from the registry's own listing and manifests.
        found = tool("search", "greet", *login)
        assert "test/hello" in found.stdout, found.stdout

        # A node and a gateway on NATS with distribution as their only registry.
        with Mesh(tmp_path, base) as mesh:
            mesh.node("n", "--registry-ca", str(ca), "--registry-user", USER, "--registry-password", PASSWORD)
            gateway = mesh.gateway("--registry-ca", str(ca), "--registry-user", USER, "--registry-password", PASSWORD)
            async with mcp.Client(f"{gateway}/mcp", mode="auto") as client:
                await until_listed(client, "test.hello.greet")
                result = await client.call_tool("test.hello.greet", {"name": "distribution"})
                assert "distribution" in text_of(result) and not result.is_error, text_of(result)
    finally:
        stop(proc)


class TokenService:
    """The token service of the OCI / Docker token flow: trades Basic
    credentials for a JWT (ES256, its certificate in `x5c`) granting the
    scopes asked for, which distribution verifies against the bundle."""

    def __init__(self, tmp_path):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "toolmesh test token issuer")])
        self.cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = tmp_path / "token-issuer.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.scopes = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
                if self.headers.get("authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                scopes = query.get("scope", [])
                service.scopes.extend(scopes)
                body = json.dumps({"token": service.token(query.get("service", [""])[0], scopes)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        # Over TLS from the same private CA as the registry (a client refuses
        # to send credentials to a clear-text realm of an https registry).
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.realm = f"https://127.0.0.1:{self.server.server_port}/token"

    def token(self, audience, scopes):
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":", 2) if scope.count(":") >= 2 else (scope, "", "")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": "toolmesh-test-issuer", "sub": USER, "aud": audience, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self):
        self.server.shutdown()


def test_the_oci_token_flow_against_distribution(tmp_path):
    private_ca(tmp_path)
    tokens = TokenService(tmp_path)
    auth = f"""auth:
  token:
    realm: "{tokens.realm}"
    service: toolmesh-test
    issuer: toolmesh-test-issuer
    rootcertbundle: "{tokens.bundle}"
"""
    proc, base, ca = start_distribution(tmp_path, auth)
    try:
        login = ["--registry", base, "--registry-ca", str(ca), "--registry-user", USER, "--registry-password", PASSWORD]
        tool("publish", str(COMPONENTS / "hello.wasm"), "--name", "test/hello", "--version", "1.0", *login)
        # The registry names the actions in either order.
        pushes = [s for s in tokens.scopes if s.startswith("repository:test/hello:") and "push" in s.rsplit(":", 1)[1]]
        assert pushes, tokens.scopes
        pulled = tmp_path / "pulled.wasm"
        tool("pull", "test/hello:1.0", "-o", str(pulled), *login)
        assert pulled.read_bytes() == (COMPONENTS / "hello.wasm").read_bytes()
        found = tool("search", "greet", *login)
        assert "test/hello" in found.stdout and "registry:catalog:*" in tokens.scopes, (found.stdout, tokens.scopes)
        # No credentials: the token service refuses, and the error says so.
        refused = tool("pull", "test/hello:1.0", "--registry", base, "--registry-ca", str(ca), ok=False)
        assert "token service refused" in refused.stderr, refused.stderr
    finally:
        stop(proc)
        tokens.close()
