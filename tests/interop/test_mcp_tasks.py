"""Calls that run as tasks (the `io.modelcontextprotocol/tasks` extension),
driven over streamable HTTP with plain 2026-07-28 JSON-RPC requests (the
Python SDK has no tasks client yet): a task polled to completion, a tool
error and a crash told apart, questions answered through `tasks/update`,
cancellation, unknown ids, and on a two-gateway mesh a task polled to
completion through the other gateway after the first one was killed.

Fixtures are in conftest.py.
"""

import json
import time
import urllib.error
import urllib.request

from conftest import COMPONENTS, publish_to, start_gateway

POLLS = {"extensions": {"io.modelcontextprotocol/tasks": {}}, "elicitation": {}}


def rpc(base, method, params, name=None, capabilities=None):
    """One 2026-07-28 request; its `result`, or its `error` as `{"error": …}`."""
    meta = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": POLLS if capabilities is None else capabilities,
    }
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": meta}}).encode()
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if name:
        headers["Mcp-Name"] = name
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{base}/mcp", body, headers), timeout=30) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as e:
        answer = json.loads(e.read())
    return answer.get("result", {"error": answer.get("error")})


def call(base, tool, arguments, **extra):
    return rpc(base, "tools/call", {"name": tool, "arguments": arguments}, tool, **extra)


def task(base, task_id):
    return rpc(base, "tasks/get", {"taskId": task_id}, task_id)


def until(base, task_id, statuses, seconds=30):
    deadline = time.monotonic() + seconds
    while True:
        state = task(base, task_id)
        if state.get("status") in statuses:
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def until_listed(base, tool, seconds=30):
    deadline = time.monotonic() + seconds
    while tool not in [t["name"] for t in rpc(base, "tools/list", {}).get("tools", [])]:
        assert time.monotonic() < deadline, f"{tool} never listed"
        time.sleep(0.2)


def test_tasks_run_are_polled_answered_and_cancelled(tmp_path):
    empty = tmp_path / "no-examples"
    empty.mkdir()
    with start_gateway(tmp_path, examples=empty, timeout="10s") as (base, data, _, _):
        publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/jobs", "1.0.0")
        until_listed(base, "acme.jobs.slow_compute")
        listed = {t["name"]: t for t in rpc(base, "tools/list", {})["tools"]}
        assert listed["acme.jobs.slow_compute"]["_meta"]["dev.toolmesh/taskSupport"] == "optional"
        assert listed["acme.jobs.failing_job"]["_meta"]["dev.toolmesh/taskSupport"] == "required"
        assert "dev.toolmesh/taskSupport" not in listed["acme.jobs.greet"]["_meta"]

        started = call(base, "acme.jobs.slow_compute", {"seconds": 3})
        assert (started["resultType"], started["status"]) == ("task", "working"), started
        assert started["ttlMs"] >= 60_000 and started["pollIntervalMs"] > 0
        # Its progress stays readable while it works.
        deadline = time.monotonic() + 10
        while "of 3 seconds" not in task(base, started["taskId"]).get("statusMessage", ""):
            assert time.monotonic() < deadline, task(base, started["taskId"])
            time.sleep(0.2)
        done = until(base, started["taskId"], {"completed"})
        assert done["result"]["content"][0]["text"] == "Computed after 3 seconds"

        # The tool's own error: completed with isError; a crash: failed.
        failing = call(base, "acme.jobs.failing_job", {})
        failed_tool = until(base, failing["taskId"], {"completed", "failed"})
        assert failed_tool["status"] == "completed" and failed_tool["result"]["isError"] is True
        crash = call(base, "acme.jobs.protocol_error_job", {})
        crashed = until(base, crash["taskId"], {"completed", "failed"})
        assert crashed["status"] == "failed" and "result" not in crashed
        assert "trapped" in crashed["error"]["message"], crashed

        # Questions park the task until tasks/update answers them.
        asking = call(base, "acme.jobs.multi_input", {})
        waiting = until(base, asking["taskId"], {"input_required"})
        assert sorted(waiting["inputRequests"]) == ["first", "second"]
        ack = rpc(base, "tasks/update", {"taskId": asking["taskId"],
                                         "inputResponses": {"first": {"action": "accept", "content": {"value": "a"}}}},
                  asking["taskId"])
        assert ack == {"resultType": "complete"}, ack
        still = task(base, asking["taskId"])
        assert still["status"] == "input_required" and list(still["inputRequests"]) == ["second"]
        rpc(base, "tasks/update", {"taskId": asking["taskId"],
                                   "inputResponses": {"second": {"action": "accept", "content": {"value": "b"}}}},
            asking["taskId"])
        answered = until(base, asking["taskId"], {"completed"})
        assert answered["result"]["content"][0]["text"] == "a and b"

        # Cancelled while running: cancelled, and stays so.
        slow = call(base, "acme.jobs.slow_compute", {"seconds": 5})
        assert rpc(base, "tasks/cancel", {"taskId": slow["taskId"]}, slow["taskId"]) == {"resultType": "complete"}
        assert until(base, slow["taskId"], {"cancelled", "completed"}, 10)["status"] == "cancelled"
        time.sleep(0.5)
        assert task(base, slow["taskId"])["status"] == "cancelled"

        assert task(base, "no-such-task")["error"]["code"] == -32602
        # A client that does not poll gets the result, or -32021 for a tool that must be a task.
        plain = {"elicitation": {}}
        direct = call(base, "acme.jobs.slow_compute", {"seconds": 0}, capabilities=plain)
        assert direct["content"][0]["text"] == "Computed after 0 seconds"
        refused = call(base, "acme.jobs.failing_job", {}, capabilities=plain)
        assert refused["error"]["code"] == -32021


def test_a_task_outlives_a_restart_of_tool_serve(tmp_path):
    """`tool serve` keeps task records in its data directory: killed while a
    task runs and started again, it finds the task, sees its hold lapse,
    runs it again (the tool is read-only) and completes it."""
    empty = tmp_path / "no-examples"
    empty.mkdir()
    with start_gateway(tmp_path, examples=empty, timeout="10s") as (base, data, _, proc):
        publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/jobs", "1.0.0")
        until_listed(base, "acme.jobs.slow_compute")
        started = call(base, "acme.jobs.slow_compute", {"seconds": 4})
        assert started["status"] == "working", started
        proc.kill()
        proc.wait(10)
    with start_gateway(tmp_path, examples=empty, timeout="10s") as (base, _, log, _):
        until_listed(base, "acme.jobs.slow_compute")
        assert task(base, started["taskId"])["status"] == "working"
        done = until(base, started["taskId"], {"completed", "failed"}, 60)
        assert done["status"] == "completed", done
        assert "took over a task whose gateway stopped" in log.read_text()


def test_a_task_outlives_its_gateway_on_a_mesh(tmp_path, registry):
    """Two gateways and a node on NATS with JetStream: a task started through
    the first gateway and cancelled through the second stops on its node; a
    task started through the first gateway, which is then killed, is polled
    through the second;
    once the first's hold lapses the second runs it again (the tool is
    read-only) and it completes."""
    from test_mesh import Mesh, publish

    config = f"""listen: 127.0.0.1:{{port}}
jetstream {{ store_dir: "{tmp_path / 'jetstream'}" }}
"""
    with Mesh(tmp_path, registry, config=config) as mesh:
        publish(mesh, "conformance.wasm", "acme/jobs")
        worker, _ = mesh.node("worker")
        first = mesh.gateway(name="gateway-1")
        second = mesh.gateway(name="gateway-2")
        until_listed(first, "acme.jobs.slow_compute")
        until_listed(second, "acme.jobs.slow_compute")
        # Cancelled through the other gateway: the run on the node stops too.
        doomed = call(first, "acme.jobs.slow_compute", {"seconds": 30})
        assert rpc(second, "tasks/cancel", {"taskId": doomed["taskId"]}, doomed["taskId"]) == {"resultType": "complete"}
        assert task(first, doomed["taskId"])["status"] == "cancelled"
        deadline = time.monotonic() + 10
        while "cancelled by the gateway" not in worker.read_text():
            assert time.monotonic() < deadline, "the cancelled task's run went on"
            time.sleep(0.2)
        started = call(first, "acme.jobs.slow_compute", {"seconds": 6})
        assert started["status"] == "working", started
        assert task(second, started["taskId"])["status"] == "working"
        gateway_one = next(proc for log, proc in mesh.procs if log.name == "gateway-1.log")
        gateway_one.kill()
        done = until(second, started["taskId"], {"completed", "failed"}, 60)
        assert done["status"] == "completed", done
        assert done["result"]["content"][0]["text"] == "Computed after 6 seconds"
        log = (tmp_path / "gateway-2.log").read_text()
        assert "took over a task whose gateway stopped" in log
