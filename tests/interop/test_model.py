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

from conftest import SDK_EXAMPLES, examples_without, start_gateway, until_listed
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

            # The GPU path, on a few texts (the longest among them).
            some = [0, 4, 6, 9, 15, 25]
            result = await client.call_tool(
                "examples.model.embed", {"texts": [texts[i] for i in some], "device": "gpu"}
            )
            assert not result.is_error, text_of(result)
            assert result.structured_content["device"].startswith("gpu: ")
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
