"""Resources and prompts of published packages, and richer content, through
the gateway with the official Python MCP SDK: listed across packages under
names and URIs that cannot collide, read and filled in on a node, each
package's documentation, list changes after a publish, and hostile
packages contained.

Fixtures are in conftest.py.
"""

import base64

import anyio
import mcp
import pytest
from conftest import COMPONENTS, publish_to

MODES = ["auto", "legacy"]
FIXTURES = "toolmesh://conformance/fixtures/"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def served(gateway):
    """`tool serve` with the examples and the conformance fixtures published
    under their namespaced names."""
    base, data, log = gateway
    publish_to(base, data, COMPONENTS / "conformance.wasm", "conformance/fixtures", "1.0.0")
    return base, data, log


async def until(check, seconds=15):
    with anyio.fail_after(seconds):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.05)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_resources_across_packages(served, mode):
    base, _, _ = served
    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        async def listed():
            found = {r.uri: r for r in (await client.list_resources(cache_mode="bypass")).resources}
            return found if f"{FIXTURES}test://static-text" in found else None

        resources = await until(listed)
        guide = resources["toolmesh://examples/markdown/markdown://guide"]
        assert (guide.name, guide.mime_type) == ("examples.markdown.guide", "text/markdown")
        assert resources[f"{FIXTURES}test://static-binary"].name == "conformance.fixtures.static-binary"
        # Every package's documentation, the examples' and the fixtures'.
        assert "toolmesh://examples/hello/README.md" in resources
        assert f"{FIXTURES}README.md" in resources

        text = (await client.read_resource(f"{FIXTURES}test://static-text")).contents
        assert [(c.uri, c.mime_type, c.text) for c in text] == [
            (f"{FIXTURES}test://static-text", "text/plain", "This is the content of the static text resource.")
        ]
        binary = (await client.read_resource(f"{FIXTURES}test://static-binary")).contents[0]
        assert base64.b64decode(binary.blob)[1:4] == b"PNG"

        templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}
        assert set(templates) >= {f"{FIXTURES}test://template/{{id}}/data",
                                  "toolmesh://examples/markdown/markdown://examples/{name}"}
        item = (await client.read_resource(f"{FIXTURES}test://template/123/data")).contents[0]
        assert item.uri == f"{FIXTURES}test://template/123/data"
        assert '"id":"123"' in item.text
        tables = (await client.read_resource("toolmesh://examples/markdown/markdown://examples/tables")).contents
        assert "| Tool | Kind |" in tables[0].text

        docs = (await client.read_resource("toolmesh://examples/markdown/README.md")).contents[0]
        assert docs.mime_type == "text/markdown"
        for expected in ["# examples/markdown", "examples.markdown.to_html", "markdown://guide", "review_outline("]:
            assert expected in docs.text, docs.text

        # Unknown URIs: -32602 with the URI (SEP-2164), whether no package
        # claims them or the package itself says it has nothing there.
        for missing in [f"{FIXTURES}test://nothing", "test://static-text",
                        "toolmesh://examples/markdown/markdown://examples/blink"]:
            with pytest.raises(mcp.MCPError) as refused:
                await client.read_resource(missing)
            assert refused.value.error.code == -32602, missing
            assert refused.value.error.data == {"uri": missing}


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
async def test_prompts_across_packages(served, mode):
    base, _, _ = served
    async with mcp.Client(f"{base}/mcp", mode=mode) as client:
        async def listed():
            found = {p.name: p for p in (await client.list_prompts(cache_mode="bypass")).prompts}
            return found if "conformance.fixtures.test_simple_prompt" in found else None

        prompts = await until(listed)
        review = prompts["examples.markdown.review_outline"]
        assert [(a.name, a.required) for a in review.arguments] == [("markdown", True)]

        filled = await client.get_prompt("conformance.fixtures.test_prompt_with_arguments",
                                         {"arg1": "hello", "arg2": "world"})
        assert [(m.role, m.content.text) for m in filled.messages] == [
            ("user", "Prompt with arguments: arg1='hello', arg2='world'")
        ]
        outline = await client.get_prompt("examples.markdown.review_outline", {"markdown": "# A\n## B\n"})
        embedded, question = outline.messages
        assert embedded.content.type == "resource"
        assert (embedded.content.resource.uri, embedded.content.resource.text) == ("markdown://document", "# A\n## B\n")
        assert "- [A](#a)" in question.content.text
        image = await client.get_prompt("conformance.fixtures.test_prompt_with_image")
        assert image.messages[0].content.type == "image"
        assert base64.b64decode(image.messages[0].content.data)[1:4] == b"PNG"

        with pytest.raises(mcp.MCPError) as missing:
            await client.get_prompt("examples.markdown.review_outline", {})
        assert missing.value.error.code == -32602
        assert "markdown" in missing.value.error.message
        with pytest.raises(mcp.MCPError) as unknown:
            await client.get_prompt("examples.markdown.nope")
        assert unknown.value.error.code == -32602


@pytest.mark.anyio
async def test_richer_content_reaches_the_client(served):
    base, _, _ = served
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        audio = (await client.call_tool("conformance.fixtures.test_audio_content", {})).content[0]
        assert (audio.type, audio.mime_type) == ("audio", "audio/wav")
        assert base64.b64decode(audio.data)[:4] == b"RIFF"
        mixed = (await client.call_tool("conformance.fixtures.test_multiple_content_types", {})).content
        assert [c.type for c in mixed] == ["text", "image", "resource"]
        assert mixed[2].resource.uri == "test://mixed-content-resource"
        assert mixed[2].resource.text == '{"test":"data","value":123}'


@pytest.mark.anyio
async def test_a_publish_announces_new_prompts_and_resources(gateway):
    base, data, _ = gateway
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        async with client.listen(prompts_list_changed=True, resources_list_changed=True) as subscription:
            publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/fixtures", "1.0.0")
            with anyio.fail_after(15):
                async for _event in subscription:
                    break
        prompts = [p.name for p in (await client.list_prompts(cache_mode="bypass")).prompts]
        assert "acme.fixtures.test_simple_prompt" in prompts

    changed = anyio.Event()

    async def on_message(message):
        if getattr(getattr(message, "root", message), "method", None) == "notifications/resources/list_changed":
            changed.set()

    async with mcp.Client(f"{base}/mcp", mode="legacy", message_handler=on_message) as client:
        await client.list_resources()
        publish_to(base, data, COMPONENTS / "conformance.wasm", "acme/fixtures", "2.0.0")
        with anyio.fail_after(15):
            await changed.wait()


@pytest.mark.anyio
async def test_hostile_offers_are_contained(served):
    base, data, _ = served
    publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        async def listed():
            found = {p.name for p in (await client.list_prompts(cache_mode="bypass")).prompts}
            return found if "test.hostile.huge" in found else None

        await until(listed)
        # A prompt far over the output limit is refused, not relayed.
        with pytest.raises(mcp.MCPError) as huge:
            await client.get_prompt("test.hostile.huge")
        assert "output" in huge.value.error.message.lower(), huge.value.error.message
        # A read that never ends is stopped by the node's time limit.
        with pytest.raises(mcp.MCPError) as endless:
            await client.read_resource("toolmesh://test/hostile/hostile://spin")
        assert "time" in endless.value.error.message.lower(), endless.value.error.message
        # The gateway and node still serve.
        text = (await client.read_resource(f"{FIXTURES}test://static-text")).contents[0].text
        assert text.startswith("This is the content")


UPDATE = "conformance.fixtures.test_update_resource"


async def updates_heard(subscription, count, seconds=10):
    """The next `count` resource updates a listen stream hears."""
    heard = []
    with anyio.fail_after(seconds):
        async for event in subscription:
            heard.append(event.uri)
            if len(heard) == count:
                return heard
    return heard


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_package_tells_subscribers_its_resources_changed(served):
    """A call reports resources of its package changed: listen streams and
    legacy sessions subscribed to them are told, under the URIs the gateway
    serves; URIs the package does not offer are dropped; a publish of the
    package under a new digest updates every subscribed resource of it."""
    base, data, _ = served
    static, templated = f"{FIXTURES}test://static-text", f"{FIXTURES}test://template/7/data"
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        asked = [static, templated, f"{FIXTURES}test://nowhere", "toolmesh://examples/hello/README.md"]
        async with client.listen(resource_subscriptions=asked) as subscription:
            assert sorted(subscription.honored.resource_subscriptions) == sorted([static, templated, asked[3]])
            for uri in ["test://nowhere", "test://template/7/data", "test://template/7/data", "test://static-text"]:
                await client.call_tool(UPDATE, {"uri": uri})
            assert await updates_heard(subscription, 2) == [templated, static]
            # The fixtures again, under a new digest: each of their subscribed resources changed.
            publish_to(base, data, COMPONENTS / "conformance.wasm", "conformance/fixtures", "1.0.1")
            assert sorted(await updates_heard(subscription, 2, 20)) == sorted([static, templated])

    heard = []

    async def on_message(message):
        root = getattr(message, "root", message)
        if getattr(root, "method", None) == "notifications/resources/updated":
            heard.append(root.params.uri)

    async with mcp.Client(f"{base}/mcp", mode="legacy", message_handler=on_message) as client:
        await client.subscribe_resource(static)
        with pytest.raises(mcp.MCPError) as unknown:
            await client.subscribe_resource(f"{FIXTURES}test://nowhere")
        assert unknown.value.error.code == -32602
        await client.call_tool(UPDATE, {"uri": "test://template/7/data"})
        await client.call_tool(UPDATE, {"uri": "test://static-text"})
        async def told():
            return heard == [static]

        await until(told)
        await client.unsubscribe_resource(static)
        await client.call_tool(UPDATE, {"uri": "test://static-text"})
        await anyio.sleep(0.5)
        assert heard == [static]


def test_resource_updates_cross_gateways_on_a_mesh(tmp_path, registry):
    """On a mesh a resource reported changed by a call through one gateway
    reaches a listen stream held by another."""
    from test_mesh import Mesh, publish

    async def scenario(first, second):
        async with mcp.Client(f"{second}/mcp", mode="auto") as listener, \
                mcp.Client(f"{first}/mcp", mode="auto") as caller:
            uri = "toolmesh://acme/fixtures/test://static-text"
            async with listener.listen(resource_subscriptions=[uri]) as subscription:
                await caller.call_tool("acme.fixtures.test_update_resource", {"uri": "test://static-text"})
                assert await updates_heard(subscription, 1) == [uri]

    with Mesh(tmp_path, registry) as mesh:
        publish(mesh, "conformance.wasm", "acme/fixtures")
        mesh.node("worker")
        first, second = mesh.gateway(name="gateway-1"), mesh.gateway(name="gateway-2")
        for base in (first, second):
            anyio.run(until_resource, base, "toolmesh://acme/fixtures/test://static-text")
        anyio.run(scenario, first, second)


async def until_resource(base, uri):
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        async def listed():
            return uri in {r.uri for r in (await client.list_resources(cache_mode="bypass")).resources}

        await until(listed, 30)
