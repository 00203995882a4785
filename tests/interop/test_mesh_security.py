"""The mesh's security as an operator sets it up: a NATS server with TLS
from a private CA, one nkey user per node and one for gateways, and
subject permissions so that a node may only take its own calls and publish
its own advert (docs/mesh.md shows the same configuration). A node with
the wrong key, or one claiming another node's id, is refused by the server
and stops with a clear error; the real node keeps serving.
"""

import subprocess

import mcp
import pytest
from conftest import TOOL, private_ca, until_listed
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
    # A node: its own call and cancel subjects, its own advert, and answers
    # only to the inboxes of calls it was sent (allow_responses).
    return f"""{{ nkey: {public}, permissions: {{
        publish: {{ allow: ["toolmesh.v1.advert.{node_id}"] }},
        subscribe: {{ allow: ["toolmesh.v1.call.{node_id}", "toolmesh.v1.cancel.{node_id}"] }},
        allow_responses: {{ max: 1000000 }} }} }}"""


def gateway_user(public):
    return f"""{{ nkey: {public}, permissions: {{
        publish: {{ allow: ["toolmesh.v1.call.*", "toolmesh.v1.cancel.*"] }},
        subscribe: {{ allow: ["toolmesh.v1.advert.*", "_INBOX.>"] }} }} }}"""


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
    mesh = Mesh(tmp_path, registry, config=config, scheme="tls")
    try:
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
    finally:
        mesh.close()
