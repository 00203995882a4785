"""The A2A front door with the official Python client (`a2a-sdk`,
protocol 1.0): the agent card's skills are the catalog's tools, a message
naming a skill runs the tool as a task (the gateway's MCP tasks), tasks are
read and cancelled, and a gateway that needs a key keeps its skills to
callers that bring one.

Fixtures are in conftest.py.
"""

import json

import anyio
import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import new_data_message, new_text_message
from a2a.types.a2a_pb2 import (
    CancelTaskRequest,
    GetTaskRequest,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError
from conftest import COMPONENTS, publish_to, start_gateway
from google.protobuf import json_format
from test_mcp_tasks import task as mcp_task

SCHEMAS = "https://toolmesh.dev/a2a/extensions/tool-schemas/v1"


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def send(client, data, wait=True):
    """Sends a message with one data part; the task it comes back with."""
    message = new_data_message(data, media_type="application/json", role=Role.ROLE_USER)
    request = SendMessageRequest(message=message, configuration=SendMessageConfiguration(return_immediately=not wait))
    task = None
    async for event in client.send_message(request):
        if event.HasField("task"):
            task = event.task
    assert task is not None
    return task


def state(task):
    return TaskState.Name(task.status.state)


def status_text(task):
    return " ".join(part.text for part in task.status.message.parts)


@pytest.mark.anyio
async def test_agents_call_tools_as_skills(tmp_path):
    with start_gateway(tmp_path, timeout="10s") as (base, data, _, _):
        publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/jobs", "1.0.0")
        async with httpx.AsyncClient(timeout=60) as http:
            card = await A2ACardResolver(http, base).get_agent_card()
            with anyio.fail_after(30):
                while "acme.jobs.slow_compute" not in {s.id for s in card.skills}:
                    await anyio.sleep(0.2)
                    card = await A2ACardResolver(http, base).get_agent_card()
            skills = {s.id: s for s in card.skills}
            assert skills["examples.text.regex_find"].description.startswith("Finds the matches")
            assert card.supported_interfaces[0].url == f"{base}/a2a"
            assert card.supported_interfaces[0].protocol_binding == "JSONRPC"
            (extension,) = [e for e in card.capabilities.extensions if e.uri == SCHEMAS]
            schemas = json_format.MessageToDict(extension.params)
            assert schemas["examples.text.regex_find"]["inputSchema"]["properties"]["limit"]["type"] == "integer"

            client = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(card)
            # The client sends numbers as doubles: `limit` reaches the tool as the integer it declares.
            found = await send(client, {"skill": "examples.text.regex_find",
                                        "arguments": {"pattern": "o", "text": "foo boo", "limit": 3}})
            assert state(found) == "TASK_STATE_COMPLETED", status_text(found)
            (artifact,) = found.artifacts
            result = json_format.MessageToDict(artifact.parts[0].data)
            assert [m["start"] for m in result["matches"]] == [1, 2, 5]
            # Read again by A2A and, being the gateway's MCP task, over MCP.
            again = await client.get_task(GetTaskRequest(id=found.id))
            assert state(again) == "TASK_STATE_COMPLETED"
            assert mcp_task(base, found.id)["status"] == "completed"

            # A tool's own error fails the task, saying why.
            failed = await send(client, {"skill": "acme.jobs.test_error_handling", "arguments": {}})
            assert state(failed) == "TASK_STATE_FAILED" and status_text(failed), failed

            # A long call, returned at once, then cancelled; a second cancel is refused.
            slow = await send(client, {"skill": "acme.jobs.slow_compute", "arguments": {"seconds": 8}}, wait=False)
            assert state(slow) == "TASK_STATE_WORKING"
            cancelled = await client.cancel_task(CancelTaskRequest(id=slow.id))
            assert state(cancelled) == "TASK_STATE_CANCELED"
            with pytest.raises(TaskNotCancelableError):
                await client.cancel_task(CancelTaskRequest(id=slow.id))
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id="no-such-task"))

            # Nothing this agent can do: rejected, saying how to ask.
            unknown = await send(client, {"skill": "acme.jobs.nothing_here", "arguments": {}})
            assert state(unknown) == "TASK_STATE_REJECTED" and "no skill" in status_text(unknown)
            prose = None
            request = SendMessageRequest(message=new_text_message("please greet Ada", role=Role.ROLE_USER))
            async for event in client.send_message(request):
                prose = event.task
            assert state(prose) == "TASK_STATE_REJECTED" and "data part" in status_text(prose)
            await client.close()


def test_a_gateway_that_needs_a_key_keeps_its_skills_to_callers_with_one(tmp_path):
    with start_gateway(tmp_path, "--api-key", "sesame") as (base, _, _, _):
        card = httpx.get(f"{base}/.well-known/agent-card.json").json()
        assert card["skills"] == [] and card["capabilities"]["extendedAgentCard"] is True
        assert card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"] == "Bearer"
        call = {"jsonrpc": "2.0", "id": "1", "method": "GetExtendedAgentCard", "params": {}}
        headers = {"A2A-Version": "1.0"}
        assert httpx.post(f"{base}/a2a", json=call, headers=headers).status_code == 401
        extended = httpx.post(f"{base}/a2a", json=call, headers={**headers, "Authorization": "Bearer sesame"}).json()
        assert "examples.hello.greet" in {s["id"] for s in extended["result"]["skills"]}
        # A version this agent does not speak is refused by name.
        old = httpx.post(f"{base}/a2a", json=call, headers={"A2A-Version": "0.3", "Authorization": "Bearer sesame"})
        assert old.json()["error"]["code"] == -32009
        # Malformed requests get JSON-RPC errors, not a crash.
        bad = httpx.post(f"{base}/a2a", content=b"{nope",
                         headers={**headers, "Authorization": "Bearer sesame", "Content-Type": "application/json"})
        assert bad.json()["error"]["code"] == -32700
        # Not from other sites' pages, not through a rebound name, not as a form.
        keyed = {**headers, "Authorization": "Bearer sesame"}
        cross = httpx.post(f"{base}/a2a", json=call, headers={**keyed, "Origin": "https://attacker.example"})
        assert cross.status_code == 403
        rebound = httpx.post(f"{base}/a2a", json=call, headers={**keyed, "Host": "attacker.example"})
        assert rebound.status_code == 403
        form = httpx.post(f"{base}/a2a", content=json.dumps(call), headers={**keyed, "Content-Type": "text/plain"})
        assert form.status_code == 415
        assert httpx.get(f"{base}/v0/servers", headers={"Host": "attacker.example"}).status_code == 403
        empty = {"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {"parts": []}}}
        answer = httpx.post(f"{base}/a2a", json=empty, headers={**headers, "Authorization": "Bearer sesame"}).json()
        assert answer["id"] == 2 and answer["error"]["code"] == -32602, json.dumps(answer)
