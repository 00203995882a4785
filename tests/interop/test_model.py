"""`model.wasm` (all-MiniLM-L6-v2 in a component) through MCP: `tool serve
--gpu` publishes it with the other examples, and the official Python MCP
SDK calls `embed` and `similarity`. The vectors are checked against
reference vectors made by sentence-transformers
(examples/model/reference/embeddings.json, made by make_reference.py in
the same directory).

Fixtures are in conftest.py.
"""

import json
import math
import pathlib

import mcp
import pytest
from mcp.shared.exceptions import MCPError

from conftest import COMPONENTS, SDK_EXAMPLES, examples_without, publish_to, start_gateway, until_listed
from test_mcp import text_of

REFERENCE = json.loads(
    (pathlib.Path(__file__).parents[2] / "examples/model/reference/embeddings.json").read_text(encoding="utf-8")
)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.mark.anyio
async def test_embeddings_match_sentence_transformers_on_both_paths(tmp_path):
    cases = REFERENCE["cases"]
    assert len(cases) >= 20
    # The GPU path on a software adapter (lavapipe in CI) is slow: the
    # longest text alone takes ~9 s there, so the budget is raised.
    policy = tmp_path / "policy.toml"
    policy.write_text('[gpu]\ntime_budget = "40s"\n')
    examples = examples_without(*SDK_EXAMPLES)
    with start_gateway(tmp_path, "--gpu", "--policy", str(policy), examples=examples, timeout="60s") as (base, _, log, _):
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            tools = await until_listed(client, "examples.model.embed", seconds=60)
            assert tools["examples.model.embed"].output_schema is not None

            texts = [case["text"] for case in cases]
            result = await client.call_tool("examples.model.embed", {"texts": texts, "device": "cpu"})
            assert not result.is_error, text_of(result)
            out = result.structured_content
            assert out["dimensions"] == 384 and out["device"] == "cpu"
            for case, vector in zip(cases, out["embeddings"], strict=True):
                assert abs(math.sqrt(sum(x * x for x in vector)) - 1) < 1e-4
                assert cosine(vector, case["embedding"]) >= 0.999, case["text"]

            # The GPU path, on a few texts (the longest among them): with
            # the adapter's optional features (lavapipe has f16 and
            # subgroups), then with core WGSL only.
            some = [0, 4, 6, 9, 15, 25]
            for device, used in (("gpu", " (f16 weights, subgroups)"), ("gpu-f32", "")):
                for _ in range(2):  # The second call finds the weights the first kept.
                    result = await client.call_tool(
                        "examples.model.embed", {"texts": [texts[i] for i in some], "device": device}
                    )
                    assert not result.is_error, text_of(result)
                    named = result.structured_content["device"]
                    assert named.startswith("gpu: "), named
                    if used and "llvmpipe" in named:
                        assert named.endswith(used), named
                    if not used:
                        assert "(f16" not in named and "subgroups)" not in named, named
                    for i, vector in zip(some, result.structured_content["embeddings"], strict=True):
                        assert cosine(vector, cases[i]["embedding"]) >= 0.999, (device, cases[i]["text"])

            # The CPU path inside wasm, the fallback where a node offers no
            # host linear algebra.
            result = await client.call_tool(
                "examples.model.embed", {"texts": [texts[i] for i in some], "device": "wasm"}
            )
            assert not result.is_error, text_of(result)
            assert result.structured_content["device"] == "wasm"
            for i, vector in zip(some, result.structured_content["embeddings"], strict=True):
                assert cosine(vector, cases[i]["embedding"]) >= 0.999, cases[i]["text"]

            ranked = await client.call_tool(
                "examples.model.similarity",
                {"query": "A man is eating food.", "candidates": ["The cat sits outside", "A man is eating a piece of bread."]},
            )
            assert not ranked.is_error, text_of(ranked)
            best = ranked.structured_content["ranked"][0]
            assert best["text"] == "A man is eating a piece of bread." and best["index"] == 1
            assert abs(best["score"] - 0.7553) < 1e-3

            # Bad arguments are the caller's error (JSON-RPC invalid params), naming the field.
            with pytest.raises(MCPError, match="texts: 0 given"):
                await client.call_tool("examples.model.embed", {"texts": []})
    text = log.read_text()
    assert "published example" in text
    # The stdio entry it prints for MCP clients grants the GPU too.
    assert '"--gpu"' in text.split("claude_desktop_config.json")[1]


@pytest.mark.anyio
async def test_hostile_linear_algebra_leaves_the_node_serving_the_model(tmp_path):
    """Floods of uploads, hostile shapes and a product with itself, from
    the linear-algebra test component (tests/linalg-abuse), on the node
    that serves `model`: each ends in a clear answer, and the model's
    embeddings (through the same host linear algebra) stay right."""
    cases = REFERENCE["cases"][:8]
    config = tmp_path / "sandbox.toml"
    config.write_text('[linalg]\nweights_memory = "160MiB"\n')
    examples = examples_without(*SDK_EXAMPLES)
    with start_gateway(tmp_path, "--config", str(config), examples=examples, timeout="30s") as (base, data, _, _):
        publish_to(base, data, COMPONENTS / "linalg_abuse.wasm", "test/linalg", "1.0.0")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            await until_listed(client, "examples.model.embed", seconds=60)
            await until_listed(client, "test.linalg.flood", seconds=60)

            async def embed():
                result = await client.call_tool("examples.model.embed", {"texts": [c["text"] for c in cases]})
                assert not result.is_error, text_of(result)
                assert result.structured_content["device"] == "cpu"
                for case, vector in zip(cases, result.structured_content["embeddings"], strict=True):
                    assert cosine(vector, case["embedding"]) >= 0.999, case["text"]
                return result.structured_content["embeddings"]

            before = await embed()
            # 40 distinct 4 MiB uploads: the model's unused weights make way.
            flood = await client.call_tool("test.linalg.flood", {"count": 40, "bytes": 4 << 20})
            assert flood.structured_content == {"kept": 40, "error": None}, text_of(flood)
            # Held at once, they stop at the node's 160 MiB for weights.
            held = await client.call_tool("test.linalg.flood", {"count": 60, "bytes": 4 << 20, "hold": True})
            assert 30 <= held.structured_content["kept"] < 60, text_of(held)
            assert "all in use" in held.structured_content["error"]
            shapes = await client.call_tool("test.linalg.shapes", {})
            answers = shapes.structured_content["answers"]
            assert len(answers) == 20 and answers[-1] == "ok" and answers.count("ok") == 1, answers
            square = [[1.0, 2.0], [3.0, 4.0]]
            aliased = await client.call_tool("test.linalg.matmul", {"a": square, "b": [[0.0]], "alias": True})
            assert aliased.structured_content == {"c": [[7.0, 10.0], [15.0, 22.0]]}, text_of(aliased)
            huge = await client.call_tool("test.linalg.zeros", {"rows": 65536, "cols": 65536})
            assert huge.is_error and "quota exceeded" in text_of(huge), text_of(huge)
            # The model uploads its weights again and gives the same vectors.
            after = await embed()
            for a, b in zip(before, after, strict=True):
                assert cosine(a, b) >= 0.99999
