"""Tools that ask their client (elicitation, sampling, roots) through the
gateway, with the official Python MCP SDK as the client: 2026-07-28
clients get `input_required` results and send the answers back with the
sealed request state; legacy sessions are asked on the session. Tampered
states are refused, clients that cannot answer are told so, a tool asking
for ever is stopped, and on a two-gateway mesh the second round of a
request is taken by the other gateway.

Fixtures are in conftest.py.
"""

import anyio
import mcp
import pytest
from conftest import COMPONENTS, publish_to
from mcp import types

MODES = ["auto", "legacy"]
TOOL = "conformance.fixtures.test_input_required_result_"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def served(gateway):
    base, data, log = gateway
    publish_to(base, data, COMPONENTS / "conformance.wasm", "conformance/fixtures", "1.0.0")
    publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
    return base, data, log


def text_of(result):
    return "".join(c.text for c in result.content if c.type == "text")


class Answers:
    """The client side: a user who fills in forms (or declines them), a
    model, and roots; it counts what it was asked."""

    def __init__(self, decline=False):
        self.decline = decline
        self.asked = []

    async def elicit(self, context, params):
        self.asked.append(("elicitation", params.message))
        if self.decline:
            return types.ElicitResult(action="decline")
        field = next(iter(params.requested_schema["properties"]))
        return types.ElicitResult(action="accept", content={field: {"name": "Ada", "color": "green"}.get(field, "x")})

    async def sample(self, context, params):
        self.asked.append(("sampling", params.messages[0].content.text))
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="Paris"),
                                         model="test-model")

    async def roots(self, context):
        self.asked.append(("roots", None))
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    def client(self, base, mode, **extra):
        return mcp.Client(f"{base}/mcp", mode=mode, elicitation_callback=self.elicit, sampling_callback=self.sample,
                          list_roots_callback=self.roots, **extra)


async def listed(client, name, seconds=15):
    with anyio.fail_after(seconds):
        while name not in [t.name for t in (await client.list_tools(cache_mode="bypass")).tools]:
            await anyio.sleep(0.05)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_asks_the_user_the_model_and_the_roots(served, mode):
    base, _, _ = served
    answers = Answers()
    async with answers.client(base, mode) as client:
        await listed(client, TOOL + "elicitation")
        assert text_of(await client.call_tool(TOOL + "elicitation", {})) == "Hello, Ada!"
        assert text_of(await client.call_tool(TOOL + "sampling", {})) == "Paris"
        assert text_of(await client.call_tool(TOOL + "list_roots", {})) == "Roots: file:///work/project"
        # Two rounds, one question each; then three questions at once.
        assert text_of(await client.call_tool(TOOL + "multi_round", {})) == "Ada likes green"
        assert text_of(await client.call_tool(TOOL + "multiple_inputs", {})) == "Paris Ada (1 roots)"
        # A prompt asks too.
        prompt = await client.get_prompt("conformance.fixtures.test_input_required_result_prompt")
        assert prompt.messages[0].content.text == "Use this context: x"
    kinds = [kind for kind, _ in answers.asked]
    assert kinds.count("elicitation") == 5 and kinds.count("sampling") == 2 and kinds.count("roots") == 2, kinds


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_declined_form_reaches_the_tool(served, mode):
    base, _, _ = served
    async with Answers(decline=True).client(base, mode) as client:
        await listed(client, TOOL + "elicitation")
        assert text_of(await client.call_tool(TOOL + "elicitation", {})) == "Hello, (declined)!"


@pytest.mark.anyio
async def test_a_tampered_or_foreign_request_state_is_refused(served):
    base, _, _ = served
    async with Answers().client(base, "auto") as client:
        await listed(client, TOOL + "elicitation")
        first = await client.session.call_tool(TOOL + "elicitation", {}, allow_input_required=True)
        assert first.result_type == "input_required"
        assert list(first.input_requests) == ["user_name"]
        state = first.request_state
        answer = {"user_name": {"action": "accept", "content": {"name": "Eve"}}}
        done = await client.session.call_tool(TOOL + "elicitation", {}, input_responses=answer, request_state=state,
                                              allow_input_required=True)
        assert text_of(done) == "Hello, Eve!"
        flipped = state[:-3] + ("A" if state[-3] != "A" else "B") + state[-2:]
        for bad, arguments, name in [(flipped, {}, TOOL + "elicitation"),
                                     (state, {}, TOOL + "request_state"),
                                     (state, {"extra": 1}, TOOL + "elicitation")]:
            with pytest.raises(mcp.MCPError) as refused:
                await client.session.call_tool(name, arguments, input_responses=answer, request_state=bad,
                                               allow_input_required=True)
            assert refused.value.error.code == -32602, refused.value.error
            assert "request state" in refused.value.error.message


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_client_that_cannot_answer_is_told_so(served, mode):
    base, _, _ = served
    # No callbacks: the client declares neither sampling nor elicitation.
    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        await listed(client, "conformance.fixtures.test_missing_capability")
        with pytest.raises(mcp.MCPError) as missing:
            await client.call_tool("conformance.fixtures.test_missing_capability", {})
        assert missing.value.error.code == -32021
        assert missing.value.error.data["requiredCapabilities"] == {"sampling": {}}
        # A tool with a fallback uses it: no form, so the model... which this
        # client lacks too.
        with pytest.raises(mcp.MCPError) as neither:
            await client.call_tool(TOOL + "capabilities", {})
        assert neither.value.error.code == -32021


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_a_tool_asking_for_ever_is_stopped(served, mode):
    base, _, log = served
    answers = Answers()
    async with answers.client(base, mode) as client:
        await listed(client, "test.hostile.ask_forever")
        with pytest.raises(Exception) as stopped:
            await client.call_tool("test.hostile.ask_forever", {})
        assert "10" in str(stopped.value), stopped.value
        assert len(answers.asked) <= 10
        # The gateway still serves.
        assert text_of(await client.call_tool("test.hostile.echo", {"text": "still here"})) == "still here"


@pytest.mark.anyio
async def test_the_next_round_may_go_to_another_gateway(tmp_path, registry):
    """Two gateways and a node on one NATS with JetStream: round one through
    the first gateway, round two through the second, round three through
    the first again; the gateways share the key that seals request states."""
    from test_mesh import Mesh, publish

    config = f"""listen: 127.0.0.1:{{port}}
jetstream {{ store_dir: "{tmp_path / 'jetstream'}" }}
"""
    with Mesh(tmp_path, registry, config=config) as mesh:
        publish(mesh, "conformance.wasm", "conformance/fixtures")
        mesh.node("asker")
        first, second = mesh.gateway(name="gateway-1"), mesh.gateway(name="gateway-2")
        async with Answers().client(first, "auto") as one, Answers().client(second, "auto") as two:
            await listed(one, TOOL + "multi_round", 30)
            await listed(two, TOOL + "multi_round", 30)
            asked = await one.session.call_tool(TOOL + "multi_round", {}, allow_input_required=True)
            assert list(asked.input_requests) == ["step1"]
            step1 = {"step1": {"action": "accept", "content": {"name": "Ada"}}}
            asked = await two.session.call_tool(TOOL + "multi_round", {}, input_responses=step1,
                                                request_state=asked.request_state, allow_input_required=True)
            assert list(asked.input_requests) == ["step2"]
            step2 = {"step2": {"action": "accept", "content": {"color": "blue"}}}
            done = await one.session.call_tool(TOOL + "multi_round", {}, input_responses=step2,
                                               request_state=asked.request_state, allow_input_required=True)
            assert text_of(done) == "Ada likes blue"
            # And through a client that answers by itself, over the mesh.
            assert text_of(await two.call_tool(TOOL + "sampling", {})) == "Paris"
