"""Metering and quotas: per-caller quotas answered with 429 and Retry-After
(and an isError result saying which quota), another caller unaffected;
what each caller used (calls, CPU time, bytes) in `tool usage`, the JSON
endpoint and Prometheus; and both held across two gateways on one NATS
(JetStream key-value buckets, used with no more NATS permissions than
docs/mesh.md gives gateways), with the caller and the CPU time carried
over the wire between gateway and node."""

import hashlib
import json
import re
import subprocess
import time

import pytest
from conftest import TOOL, start_gateway, until_listed
from test_mesh import Mesh, publish
from test_mesh_security import nkey, node_user
from test_oauth import INIT, mcp_client, request

ALICE, BOB = "alice-key", "bob-key"


def key_name(key):
    """The caller name toolmesh gives an API key."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def call(tool, id=7, name="quota"):
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"name": name}}}


def quota_file(tmp_path, calls):
    """Everyone gets `calls` calls a minute, except bob, who gets many."""
    path = tmp_path / "quotas.toml"
    path.write_text(f'[default]\ncalls_per_minute = {calls}\n\n[caller."{key_name(BOB)}"]\ncalls_per_minute = 1000\n')
    return path


def early_in_a_minute(seconds_needed=20):
    """Waits until the clock's minute has `seconds_needed` left, so counts
    per minute are not reset halfway through a test."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.5)


def usage(base, token, *extra):
    done = subprocess.run([TOOL, "usage", "--url", base, "--token", token, *extra], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def rows_of(base, token):
    return {(r["caller"], r["tool"]): r for r in json.loads(usage(base, token, "--json"))["usage"]}


def assert_over_quota(base, token, calls):
    status, headers, body = request(base, "POST", "/mcp", call("examples.hello.greet", id=99), token=token)
    assert status == 429, (status, body)
    assert 1 <= int(headers["retry-after"]) <= 60, headers
    assert body["id"] == 99 and body["result"]["isError"] is True, body
    text = body["result"]["content"][0]["text"]
    assert f"{calls} calls per minute" in text and "try again in" in text, text
    assert body["result"]["_meta"]["dev.toolmesh/quota"]["quota"] == "calls_per_minute", body


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_a_caller_over_its_quota_gets_429_and_usage_is_metered(tmp_path):
    flags = ["--api-key", ALICE, "--api-key", BOB, "--quotas", str(quota_file(tmp_path, 3))]
    with start_gateway(tmp_path, *flags) as (base, _data, log, _proc):
        early_in_a_minute()
        async with mcp_client(base, ALICE) as client:
            await until_listed(client, "examples.hello.greet")
            for n in range(3):
                result = await client.call_tool("examples.hello.greet", {"name": f"alice{n}"})
                assert not result.is_error and f"alice{n}" in result.content[0].text
        assert_over_quota(base, ALICE, 3)
        # Bob has a quota of his own: unaffected.
        async with mcp_client(base, BOB) as client:
            for n in range(5):
                result = await client.call_tool("examples.hello.greet", {"name": f"bob{n}"})
                assert not result.is_error, result
        # Requests other than calls still pass for alice.
        assert request(base, "POST", "/mcp", INIT, token=ALICE)[0] == 200

        rows = rows_of(base, BOB)
        alice = rows[(key_name(ALICE), "examples.hello.greet")]
        bob = rows[(key_name(BOB), "examples.hello.greet")]
        assert (alice["calls"], alice["errors"], bob["calls"]) == (3, 0, 5), rows
        assert alice["cpu_us"] > 0 and alice["gpu_us"] == 0, alice
        assert alice["bytes_in"] == sum(len(json.dumps({"name": f"alice{n}"}, separators=(",", ":"))) for n in range(3))
        assert alice["bytes_out"] == sum(len(f"Hello, alice{n}!") for n in range(3)), alice
        # A caller whose token is not limited sees everyone; the table form.
        table = usage(base, ALICE)
        assert re.search(r"CALLER\s+TOOL\s+CALLS\s+ERRORS\s+CPU\s+GPU\s+IN\s+OUT", table), table
        assert re.search(rf"{key_name(ALICE)}\s+examples\.hello\.greet\s+3\s+0\s", table), table
        # Prometheus.
        status, _, metrics = request(base, "GET", "/metrics", token=BOB)
        assert status == 200
        labels = f'caller="{key_name(ALICE)}",tool="examples.hello.greet"'
        assert f"toolmesh_gateway_usage_bytes_out_total{{{labels}}} {alice['bytes_out']}" in metrics, metrics
        assert re.search(rf"toolmesh_gateway_usage_cpu_seconds_total{{{labels}}} [0-9.e-]+", metrics), metrics
        refusals = f'toolmesh_gateway_quota_refusals_total{{caller="{key_name(ALICE)}",quota="calls_per_minute"}} 1'
        assert refusals in metrics, metrics
        assert 'outcome="over_quota"' in log.read_text()
        # Without a credential, nothing.
        assert request(base, "GET", "/usage")[0] == 401


# The gateways' NATS user may use the two buckets and nothing else of
# JetStream: the permissions docs/mesh.md gives.
GATEWAY_WITH_BUCKETS = """{{ nkey: {public}, permissions: {{
    publish: {{ allow: ["toolmesh.v1.call.*", "toolmesh.v1.cancel.*", "toolmesh.v1.tools.>",
                        "$KV.toolmesh_quota.>", "$KV.toolmesh_usage.>", "$JS.API.INFO",
                        "$JS.API.STREAM.INFO.KV_toolmesh_quota", "$JS.API.STREAM.INFO.KV_toolmesh_usage",
                        "$JS.API.STREAM.CREATE.KV_toolmesh_quota", "$JS.API.STREAM.CREATE.KV_toolmesh_usage",
                        "$JS.API.DIRECT.GET.KV_toolmesh_quota.>", "$JS.API.DIRECT.GET.KV_toolmesh_usage.>",
                        "$JS.API.CONSUMER.CREATE.KV_toolmesh_usage",
                        "$JS.API.CONSUMER.CREATE.KV_toolmesh_usage.>", "$JS.API.CONSUMER.DELETE.KV_toolmesh_usage.>"] }},
    subscribe: {{ allow: ["toolmesh.v1.advert.*", "_INBOX.>"] }} }} }}"""


@pytest.mark.anyio
async def test_quotas_and_metering_hold_across_two_gateways_on_one_nats(tmp_path, registry):
    node_key, node_pub = nkey(tmp_path, "n1")
    gateway_key, gateway_pub = nkey(tmp_path, "gateway")
    config = f"""listen: 127.0.0.1:{{port}}
jetstream {{ store_dir: "{tmp_path / 'jetstream'}" }}
authorization {{ users = [
  {node_user(node_pub, "n1")}
  {GATEWAY_WITH_BUCKETS.format(public=gateway_pub)}
] }}
"""
    with Mesh(tmp_path, registry, config=config) as mesh:
        publish(mesh, "hello.wasm", "examples/hello")
        node_log, _ = mesh.node("n1", "--id", "n1", "--nats-nkey", str(node_key))
        flags = ["--nats-nkey", str(gateway_key), "--api-key", ALICE, "--api-key", BOB,
                 "--quotas", str(quota_file(tmp_path, 4))]
        a = mesh.gateway(*flags, name="gateway-a")
        b = mesh.gateway(*flags, name="gateway-b")
        for name in ["gateway-a", "gateway-b"]:
            assert "metering and quotas shared through NATS" in (tmp_path / f"{name}.log").read_text()
        early_in_a_minute()
        for base in [a, b]:
            async with mcp_client(base, ALICE) as client:
                await until_listed(client, "examples.hello.greet")
                for n in range(2):
                    result = await client.call_tool("examples.hello.greet", {"name": f"alice{n}"})
                    assert not result.is_error, result
        # Two calls through each: the quota of four is used up on both.
        assert_over_quota(a, ALICE, 4)
        assert_over_quota(b, ALICE, 4)
        async with mcp_client(a, BOB) as client:
            assert not (await client.call_tool("examples.hello.greet", {"name": "bob"})).is_error
        # Either gateway reports what both metered (each writes its sums out
        # every second), with the CPU time the node measured and sent back.
        for base in [a, b]:
            until = time.monotonic() + 10
            while True:
                rows = rows_of(base, BOB)
                alice = rows.get((key_name(ALICE), "examples.hello.greet"), {"calls": 0})
                bob = rows.get((key_name(BOB), "examples.hello.greet"), {"calls": 0})
                if (alice["calls"], bob["calls"]) == (4, 1) or time.monotonic() > until:
                    break
                time.sleep(0.2)
            assert (alice["calls"], bob["calls"]) == (4, 1), rows
            assert alice["cpu_us"] > 0 and alice["bytes_out"] == 4 * len("Hello, alice0!"), rows
        # The node's log names the caller of each call (never its key).
        text = node_log.read_text()
        assert f"caller={key_name(ALICE)}" in text and ALICE not in text, text
