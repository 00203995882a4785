"""The mesh on a NATS cluster as operators run one: three servers routed
together, a leaf server (a site behind NAT that dials out), and nodes on
different servers, with different policies and labels. Under a steady
load of calls: one NATS server is killed, then the gateway is restarted;
every call still gets its answer, and the calls spread over the nodes.
"""

import signal
import subprocess
import time

import anyio
import mcp
import pytest
from conftest import TOOL, stop, until_listed
from test_mcp import text_of
from test_mesh import NATS_SERVER, Mesh, calls_on, free_port, free_ports, publish, wait_for


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Cluster(Mesh):
    """Three routed NATS servers and a leaf server that dials into them."""

    def __init__(self, tmp_path, registry):
        self.tmp, self.registry, self.procs = tmp_path, f"http://{registry}", []
        try:
            self.start()
        except BaseException:
            self.close()  # what did start is stopped, also when a server fails
            raise

    def start(self):
        tmp_path = self.tmp
        chosen = free_ports(10)
        ports, routes, leafs, leaf_port = chosen[0:3], chosen[3:6], chosen[6:9], chosen[9]
        self.servers = []
        for i in range(3):
            others = ", ".join(f"nats-route://127.0.0.1:{routes[j]}" for j in range(3) if j != i)
            conf = tmp_path / f"nats{i}.conf"
            conf.write_text(f"""
server_name: s{i}
listen: 127.0.0.1:{ports[i]}
cluster {{ name: toolmesh, listen: 127.0.0.1:{routes[i]}, routes: [{others}] }}
leafnodes {{ listen: 127.0.0.1:{leafs[i]} }}
""")
            log, proc = self.spawn(f"nats{i}", [str(NATS_SERVER), "-c", str(conf)])
            self.servers.append(proc)
        remotes = ", ".join(f'"nats-leaf://127.0.0.1:{p}"' for p in leafs)
        conf = tmp_path / "leaf.conf"
        conf.write_text(f"""
server_name: leaf
listen: 127.0.0.1:{leaf_port}
leafnodes {{ remotes: [ {{ urls: [{remotes}] }} ] }}
""")
        self.spawn("leaf", [str(NATS_SERVER), "-c", str(conf)])
        for i in range(3):
            wait_for(tmp_path / f"nats{i}.log", r"Server is ready", self.servers[i])
        wait_for(tmp_path / "leaf.log", r"Leafnode connection created", self.procs[-1][1])
        self.urls = [f"nats://127.0.0.1:{p}" for p in ports]
        self.leaf = f"nats://127.0.0.1:{leaf_port}"
        # Where gateways and `tool nodes` connect: server 0 only (they learn
        # the others from it, and must use them when it is gone).
        self.nats = self.urls[0]


@pytest.fixture
def cluster(tmp_path, registry):
    with Cluster(tmp_path, registry) as cluster:
        yield cluster


@pytest.mark.anyio
async def test_calls_survive_a_lost_nats_server_and_a_gateway_restart(cluster, tmp_path):
    publish(cluster, "hostile.wasm", "test/hostile")
    publish(cluster, "probe.wasm", "test/probe", 'network = ["http://127.0.0.1:9"]\nsecrets = ["SITE_KEY"]\n')
    policy = tmp_path / "site.toml"
    policy.write_text('[network]\nallow = ["http://127.0.0.1:9"]\n[secrets]\nSITE_KEY = { env = "SITE_KEY" }\n')
    # A node behind NAT reaches the mesh through its site's leaf server;
    # the others sit on servers 1 and 2 (each client also knows another
    # server to fail over to).
    site_log, _ = cluster.node("site", "--label", "site=branch", "--policy", str(policy), env={"SITE_KEY": "branch-secret"}, nats=cluster.leaf)
    one_log, _ = cluster.node("one", "--label", "site=dc", nats=f"{cluster.urls[1]},{cluster.urls[2]}")
    two_log, two = cluster.node("two", "--label", "site=dc", nats=f"{cluster.urls[2]},{cluster.urls[1]}")
    gateway_port = free_port()
    address = f"127.0.0.1:{gateway_port}"
    gateway_log, gateway = cluster.spawn(
        "gateway",
        [TOOL, "gateway", "--nats", cluster.nats, "--registry", cluster.registry, "--addr", address, "--refresh", "300ms"],
    )
    base = wait_for(gateway_log, r"listening on (http://\S+)", gateway).group(1)
    # A second gateway, on another server: gateways are stateless, any number.
    base_b = cluster.gateway(name="gateway-b", nats=cluster.urls[2])

    # The listing sees all three, the site node with its label.
    listing = subprocess.run([TOOL, "nodes", "--nats", cluster.urls[2]], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    for name in ["site", "one", "two"]:
        assert f"{name} (" in listing.stdout, listing.stdout
    assert "site=branch" in listing.stdout

    async with mcp.Client(f"{base}/mcp", mode="auto") as client, mcp.Client(f"{base_b}/mcp", mode="auto") as client_b:
        await until_listed(client, "test.probe.env")
        await until_listed(client_b, "test.hostile.nap")
        # Only the site node holds the secret: calls needing it go through the leaf.
        assert text_of(await client.call_tool("test.probe.env", {"name": "SITE_KEY"})) == "branch-secret"
        assert calls_on(site_log, "env") == 1

        # Steady load through both gateways (2 clients each, 12 calls
        # each) while server 0 (the first gateway's only server) is killed,
        # then node two is killed and started again.
        answers, started = [], time.monotonic()

        async def worker(w, via):
            for i in range(12):
                result = await via.call_tool("test.hostile.nap", {"ms": 150})
                answers.append((w, i, text_of(result), result.is_error))

        async with anyio.create_task_group() as group:
            for w in range(4):
                group.start_soon(worker, w, client if w < 2 else client_b)
            await anyio.sleep(1.0)
            cluster.servers[0].send_signal(signal.SIGKILL)
            await anyio.sleep(0.5)
            two.send_signal(signal.SIGKILL)
            await anyio.to_thread.run_sync(
                lambda: cluster.node("two-again", "--label", "site=dc", nats=f"{cluster.urls[2]},{cluster.urls[1]}")
            )
        assert len(answers) == 48 and all(a[2] == "slept 150 ms" and not a[3] for a in answers), answers
        assert time.monotonic() - started < 60
    assert "NATS disconnected" in gateway_log.read_text()

    # The load spread over the nodes (placement prefers nodes that have
    # compiled the component, so not necessarily over all of them).
    logs = [site_log, one_log, two_log, tmp_path / "two-again.log"]
    shares = [calls_on(log, "nap") for log in logs]
    assert sum(1 for n in shares if n) >= 2 and sum(shares) >= 48, shares

    # A gateway restart on the same address (now pointed at a live server):
    # a client reconnects and calls again.
    stop(gateway)
    gateway_log, gateway = cluster.spawn(
        "gateway-again",
        [TOOL, "gateway", "--nats", cluster.urls[1], "--registry", cluster.registry, "--addr", address, "--refresh", "300ms"],
    )
    wait_for(gateway_log, r"listening on", gateway)
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, "test.hostile.nap")
        assert text_of(await client.call_tool("test.hostile.nap", {"ms": 10})) == "slept 10 ms"
