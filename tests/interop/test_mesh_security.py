"""The mesh's security as an operator sets it up: a NATS server with TLS
from a private CA, one nkey user per node and one for gateways, and
subject permissions so that a node may only take its own calls and publish
its own advert (docs/mesh.md shows the same configuration). A node with
the wrong key, or one claiming another node's id, is refused by the server
and stops with a clear error; the real node keeps serving. The same holds
with creds files (user JWTs signed by an account an operator signed).
"""

import base64
import hashlib
import json
import os
import subprocess
import time

import mcp
import pytest
from conftest import TOOL, private_ca, until_listed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_mcp import text_of
from test_mesh import Mesh, publish, settled_calls_on


@pytest.fixture
def anyio_backend():
    return "asyncio"


def nkey(dir, name):
    """A new NATS user key made by `tool keygen --nats`: (seed file, public key)."""
    path = dir / f"{name}.nk"
    made = subprocess.run([TOOL, "keygen", "--nats", "-o", str(path)], capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    public = made.stdout.splitlines()[0]
    assert public.startswith("U") and (dir / f"{name}.nk.pub").read_text().strip() == public
    assert (path.stat().st_mode & 0o777) == 0o600
    return path, public


def node_user(public, node_id):
    # A node: its own call, cancel and tools-answer subjects, its own
    # advert, and answers only to the inboxes of calls it was sent
    # (allow_responses).
    return f"""{{ nkey: {public}, permissions: {{
        publish: {{ allow: ["toolmesh.v1.advert.{node_id}"] }},
        subscribe: {{ allow: ["toolmesh.v1.call.{node_id}", "toolmesh.v1.cancel.{node_id}",
                              "toolmesh.v1.tools.{node_id}.>"] }},
        allow_responses: {{ max: 1000000 }} }} }}"""


def gateway_user(public):
    return f"""{{ nkey: {public}, permissions: {{
        publish: {{ allow: ["toolmesh.v1.call.*", "toolmesh.v1.cancel.*", "toolmesh.v1.tools.>",
                            "toolmesh.v1.updated"] }},
        subscribe: {{ allow: ["toolmesh.v1.advert.*", "toolmesh.v1.updated", "_INBOX.>"] }} }} }}"""


@pytest.mark.anyio
async def test_nodes_are_held_to_their_own_subjects_over_tls(tmp_path, registry):
    ca = private_ca(tmp_path)
    a_key, a_pub = nkey(tmp_path, "node-a")
    b_key, b_pub = nkey(tmp_path, "node-b")
    gw_key, gw_pub = nkey(tmp_path, "gateway")
    stranger_key, _ = nkey(tmp_path, "stranger")
    config = f"""
listen: 127.0.0.1:{{port}}
tls {{ cert_file: "{tmp_path / 'server.pem'}", key_file: "{tmp_path / 'server.key'}", timeout: 5 }}
authorization {{
  users = [
    {node_user(a_pub, "node-a")}
    {node_user(b_pub, "node-b")}
    {gateway_user(gw_pub)}
  ]
}}
"""
    with Mesh(tmp_path, registry, config=config, scheme="tls") as mesh:
        publish(mesh, "hostile.wasm", "test/hostile")
        tls = ["--nats-ca", str(ca)]
        a_log, _ = mesh.node("a", "--id", "node-a", "--nats-nkey", str(a_key), *tls)
        base = mesh.gateway("--nats-nkey", str(gw_key), *tls)

        def refused(*argv):
            done = subprocess.run(
                [TOOL, "node", "--nats", mesh.nats, "--registry", mesh.registry, *argv],
                capture_output=True, text=True, timeout=60,
            )
            assert done.returncode == 1, done.stderr
            return done.stderr

        # A key the server does not know.
        assert "authorization violation" in refused("--id", "node-a", "--nats-nkey", str(stranger_key), *tls).lower()
        # Node b's key, claiming node a's id: refused a's subjects, so it stops.
        impostor = refused("--id", "node-a", "--name", "impostor", "--nats-nkey", str(b_key), *tls)
        assert "refuses the subjects of node id node-a" in impostor and "toolmesh.v1.call.node-a" in impostor, impostor
        # No TLS trust in the private CA: the certificate is refused.
        untrusting = refused("--id", "node-a", "--nats-nkey", str(a_key))
        assert "certificate" in untrusting.lower() or "tls" in untrusting.lower(), untrusting

        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "test.hostile.echo")
            for i in range(3):
                assert text_of(await client.call_tool("test.hostile.echo", {"text": f"over tls {i}"})) == f"over tls {i}"
        assert settled_calls_on(a_log, 3) == 3

        # The listing sees only the real node a, never the impostor's advert.
        listing = subprocess.run(
            [TOOL, "nodes", "--nats", mesh.nats, "--nats-nkey", str(gw_key), *tls, "--json"],
            capture_output=True, text=True, timeout=30,
        )
        assert listing.returncode == 0, listing.stderr
        assert '"name": "a"' in listing.stdout and "impostor" not in listing.stdout
        # The server logged each refusal.
        log = (tmp_path / "nats.log").read_text()
        assert 'toolmesh node impostor' in log and 'Subscription Violation - Subject "toolmesh.v1.call.node-a"' in log, log
        assert 'Publish Violation - Subject "toolmesh.v1.advert.node-a"' in log, log


# NATS decentralised auth, as `nsc` would set it up: an operator signs an
# account, the account signs users, each user JWT carries its permissions,
# and a creds file holds a user's JWT and seed.

NKEY_PREFIX = {"seed": 18 << 3, "operator": 14 << 3, "account": 0, "user": 20 << 3}


def crc16(data):
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def b32(data):
    return base64.b32encode(data).decode().rstrip("=")


class NKey:
    def __init__(self, kind):
        raw = os.urandom(32)
        self.private = Ed25519PrivateKey.from_private_bytes(raw)
        public = self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bytes([NKEY_PREFIX[kind]]) + public
        self.public = b32(data + crc16(data).to_bytes(2, "little"))
        p = NKEY_PREFIX[kind]
        data = bytes([NKEY_PREFIX["seed"] | (p >> 5), (p & 31) << 3]) + raw
        self.seed = b32(data + crc16(data).to_bytes(2, "little"))


def jwt(issuer, subject, name, nats):
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    claims = {"jti": "", "iat": int(time.time()), "iss": issuer.public, "name": name, "sub": subject.public, "nats": nats}
    claims["jti"] = b32(hashlib.new("sha512_256", json.dumps(claims).encode()).digest())
    signing_input = f'{b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())}.{b64(json.dumps(claims).encode())}'
    return f"{signing_input}.{b64(issuer.private.sign(signing_input.encode()))}"


def creds(path, account, name, publish, subscribe, responses=False):
    user = NKey("user")
    claims = {"type": "user", "version": 2, "pub": {"allow": publish}, "sub": {"allow": subscribe},
              "subs": -1, "data": -1, "payload": -1}
    if responses:
        claims["resp"] = {"max": 1000000, "ttl": 0}
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{jwt(account, user, name, claims)}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{user.seed}\n------END USER NKEY SEED------\n"
    )
    return path


@pytest.mark.anyio
async def test_creds_files_from_an_operator_hold_nodes_to_their_subjects(tmp_path, registry):
    operator, account = NKey("operator"), NKey("account")
    limits = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1, "leaf": -1}
    config = f"""
listen: 127.0.0.1:{{port}}
operator: "{jwt(operator, operator, "toolmesh-test", {"type": "operator", "version": 2})}"
resolver: MEMORY
resolver_preload: {{ {account.public}: "{jwt(operator, account, "tools", {"type": "account", "version": 2, "limits": limits})}" }}
"""
    node_a = creds(tmp_path / "node-a.creds", account, "node-a", ["toolmesh.v1.advert.node-a"],
                   ["toolmesh.v1.call.node-a", "toolmesh.v1.cancel.node-a", "toolmesh.v1.tools.node-a.>"],
                   responses=True)
    gateway = creds(tmp_path / "gateway.creds", account, "gateway",
                    ["toolmesh.v1.call.*", "toolmesh.v1.cancel.*", "toolmesh.v1.tools.>", "toolmesh.v1.updated"],
                    ["toolmesh.v1.advert.*", "toolmesh.v1.updated", "_INBOX.>"])
    with Mesh(tmp_path, registry, config=config) as mesh:
        publish(mesh, "hostile.wasm", "test/hostile")
        a_log, _ = mesh.node("a", "--id", "node-a", "--nats-creds", str(node_a))
        base = mesh.gateway("--nats-creds", str(gateway))
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "test.hostile.echo")
            assert text_of(await client.call_tool("test.hostile.echo", {"text": "jwt"})) == "jwt"
        assert settled_calls_on(a_log, 1) == 1
        # node-a's creds claiming node-b's id: refused, and the node stops.
        done = subprocess.run(
            [TOOL, "node", "--nats", mesh.nats, "--registry", mesh.registry, "--id", "node-b", "--nats-creds", str(node_a)],
            capture_output=True, text=True, timeout=60,
        )
        assert done.returncode == 1 and "refuses the subjects of node id node-b" in done.stderr, done.stderr
