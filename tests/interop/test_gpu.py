"""GPU compute through MCP: `tool serve --gpu` on the machine's Vulkan
adapter (lavapipe in CI), called with the official Python MCP SDK.

A runaway shader, quota abuse and bad WGSL each end in a clear error, and
the same server serves the next call; a call never sees another call's
GPU memory; a node that grants no GPU refuses GPU tools and says why.
The GPU test component (tests/gpu-abuse) runs whatever WGSL it is sent:
the hostile shaders are written here.

Fixtures are in conftest.py.
"""

import hashlib
import json
import random
import struct
import urllib.request

import mcp
import pytest

from conftest import COMPONENTS, publish_to, start_gateway, until_answered, until_listed
from test_mcp import text_of


@pytest.fixture
def anyio_backend():
    return "asyncio"


POLICY = """
[gpu]
allow = true
time_budget = "1s"
max_bytes = "64MiB"
max_dispatches = 500
max_loop_iterations = 4000000000
"""

FILL = """
@group(0) @binding(0) var<storage, read_write> v: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x < arrayLength(&v) { v[id.x] = 0xabababu; }
}
"""

# Nested: some drivers end any one loop after 65535 iterations (lavapipe
# does: 64 workgroups of this take it about a second).
RUNAWAY = """
@group(0) @binding(0) var<storage, read_write> v: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    loop { loop { loop { v[id.x % 4u] = v[id.x % 4u] * 3u + 1u; } } }
}
"""


def product(a, b):
    return [[sum(a[i][k] * b[k][j] for k in range(len(b))) for j in range(len(b[0]))] for i in range(len(a))]


@pytest.mark.anyio
async def test_gpu_calls_through_mcp_are_contained_and_the_node_keeps_serving(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    with start_gateway(tmp_path, "--policy", str(policy), timeout="20s") as (base, data, log, _):
        publish_to(base, data, COMPONENTS / "gpu_abuse.wasm", "test/gpu", "1.0.0")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            tools = await until_listed(client, "test.gpu.run_wgsl")
            assert "examples.matmul.matmul" in tools

            adapter = await client.call_tool("test.gpu.adapter", {})
            assert not adapter.is_error, text_of(adapter)
            assert adapter.structured_content["backend"] == "vulkan"
            assert adapter.structured_content["max_total_bytes"] == 64 << 20

            # A product checked against one computed here.
            rng = random.Random(7)
            a = [[rng.uniform(-1, 1) for _ in range(21)] for _ in range(19)]
            b = [[rng.uniform(-1, 1) for _ in range(17)] for _ in range(21)]
            result = await client.call_tool("examples.matmul.matmul", {"a": a, "b": b})
            assert not result.is_error, text_of(result)
            assert result.structured_content["device"].startswith("gpu: ")
            expected = product(a, b)
            got = result.structured_content["c"]
            assert all(abs(got[i][j] - expected[i][j]) < 1e-4 for i in range(19) for j in range(17))
            # Metering counts the call's GPU time (its waits for its GPU work).
            with urllib.request.urlopen(f"{base}/usage", timeout=30) as answer:
                usage = {(r["caller"], r["tool"]): r for r in json.load(answer)["usage"]}
            matmul = usage[("local", "examples.matmul.matmul")]
            assert matmul["calls"] == 1 and matmul["gpu_us"] > 0 and matmul["cpu_us"] > 0, matmul

            # One call fills 4 MiB of GPU memory; the next call's new buffers read as zeros.
            fill = {"wgsl": FILL, "buffers": [], "zeroed": [4 << 20], "workgroups": [16384, 1, 1], "read_words": 8}
            filled = await client.call_tool("test.gpu.run_wgsl", fill)
            assert not filled.is_error, text_of(filled)
            assert filled.structured_content["values"] == [0xABABAB] * 8
            fresh = await client.call_tool("test.gpu.alloc", {"bytes": 4 << 20, "count": 4, "read": True})
            assert fresh.structured_content == {"buffers": 4, "nonzero_bytes": 0}

            # Weights kept by the node: the first call uploads them, the
            # next finds them, and neither a write nor a kernel that may
            # write changes them.
            values = list(range(1, 1025))
            weights = {
                "uploads": [{"values": values, "sha256": hashlib.sha256(struct.pack("<1024I", *values)).hexdigest()}],
                "then": ["sum"],
            }
            first = await client.call_tool("test.gpu.weights", weights)
            assert not first.is_error, text_of(first)
            assert first.structured_content["found"] == [False] and first.structured_content["then"] == [[524800]]
            again = await client.call_tool("test.gpu.weights", {**weights, "then": ["write", "bind_writable", "read"]})
            assert not again.is_error, text_of(again)
            assert again.structured_content["found"] == [True], again.structured_content
            write, bind, read = again.structured_content["then"]
            assert "read-only" in write and "read-only" in bind and read == values

            # Hostile calls, each with its own clear error.
            hostile = [
                ({"wgsl": RUNAWAY, "buffers": [[0, 0, 0, 0]], "workgroups": [128, 1, 1]}, "run_wgsl",
                 "time budget (1000 ms)"),
                ({"wgsl": "fn main( {", "buffers": [[0]]}, "run_wgsl", "invalid shader"),
                ({"bytes": 8 << 20, "count": 9}, "alloc", "over its quota of 67108864 bytes"),
                ({"count": 600}, "dispatch_storm", "its 500 dispatches"),
            ]
            for args, tool, needle in hostile:
                result = await client.call_tool(f"test.gpu.{tool}", args)
                assert result.is_error and needle in text_of(result), (tool, text_of(result))
                # The next call works, on a fresh device after a timeout. On a
                # software adapter the abandoned work holds the CPU until its
                # loops reach their bound (seconds: lavapipe's devices share
                # one pool of threads), so calls may time out in the meantime,
                # and once enough devices are retired the node refuses GPU
                # calls until their work drains.
                after = await until_answered(
                    client, "examples.matmul.matmul", {"a": [[2.0]], "b": [[3.0]], "device": "gpu"}, 60,
                    ("GPU timeout", "still busy with work abandoned"),
                )
                assert not after.is_error, text_of(after)
                assert after.structured_content["c"] == [[6.0]]
                assert after.structured_content["device"].startswith("gpu: ")
            storm = await client.call_tool("test.gpu.dispatch_storm", {"count": 500})
            assert storm.structured_content == {"values": [500]}
    assert "retiring the GPU device" in log.read_text()


@pytest.mark.anyio
async def test_a_node_without_a_gpu_grant_refuses_gpu_only_tools_and_runs_the_rest_on_the_cpu(tmp_path):
    with start_gateway(tmp_path) as (base, data, log, _):
        publish_to(base, data, COMPONENTS / "gpu_abuse.wasm", "test/gpu", "1.0.0")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "test.gpu.adapter")
            refused = await client.call_tool("test.gpu.adapter", {})
            assert refused.is_error
            assert "GPU compute (the policy's [gpu] allow is false)" in text_of(refused), text_of(refused)
            # matmul's GPU is optional: it runs here on its CPU path.
            product = await client.call_tool("examples.matmul.matmul", {"a": [[1.0, 2.0]], "b": [[3.0], [4.0]]})
            assert product.structured_content == {"c": [[11.0]], "device": "cpu"}, text_of(product)
            greeted = await client.call_tool("examples.hello.greet", {"name": "Ada"})
            assert text_of(greeted) == "Hello, Ada!"


@pytest.mark.anyio
async def test_runaway_work_left_on_retired_devices_is_bounded(tmp_path):
    """Each runaway call retires the device it ran on; while four retired
    devices are still busy the node opens no new one, GPU calls fail with a
    clear error, and other tools are served."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.replace('time_budget = "1s"', 'time_budget = "300ms"'))
    with start_gateway(tmp_path, "--policy", str(policy), timeout="20s") as (base, data, log, _):
        publish_to(base, data, COMPONENTS / "gpu_abuse.wasm", "test/gpu", "1.0.0")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "test.gpu.run_wgsl")
            # Each about 40 s of work on lavapipe on two cores.
            runaway = {"wgsl": RUNAWAY, "buffers": [[0, 0, 0, 0]], "workgroups": [2048, 1, 1]}
            for _ in range(4):
                result = await client.call_tool("test.gpu.run_wgsl", runaway)
                assert result.is_error and "time budget (300 ms)" in text_of(result), text_of(result)
            refused = await client.call_tool("examples.matmul.matmul", {"a": [[1.0]], "b": [[1.0]], "device": "gpu"})
            assert refused.is_error
            assert "still busy with work abandoned by 4 earlier calls" in text_of(refused), text_of(refused)
            # The same tool on the CPU, and tools without a GPU, are served.
            cpu = await client.call_tool("examples.matmul.matmul", {"a": [[2.0]], "b": [[4.0]], "device": "cpu"})
            assert cpu.structured_content == {"c": [[8.0]], "device": "cpu"}
            greeted = await client.call_tool("examples.hello.greet", {"name": "Ada"})
            assert text_of(greeted) == "Hello, Ada!"
