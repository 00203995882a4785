"""Code that calls tools: `run_javascript` and `run_python` calling the
catalog's tools through `tools.call`, the accessors, `Promise.all` and
`tools.gather`, driven through `tool serve` by the official MCP SDK, as an
agent would; then the limits (depth, count, held results, time), hostile
programs with another client served throughout, a caller whose rights do
not reach a tool, and fan-out over a two-node mesh on NATS.

Fixtures are in conftest.py.
"""

import json
import time

import anyio
import mcp
import pytest

from conftest import COMPONENTS, code_examples, publish_to, start_gateway, wait_until_compiled
from test_mcp import text_of

PY = "examples.python.run_python"
JS = "examples.javascript.run_javascript"


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `tool serve` with the examples (the interpreters among them) and
    the hostile test tools, calls limited to 8 s."""
    tmp = tmp_path_factory.mktemp("code-tools")
    with start_gateway(tmp, examples=code_examples(), timeout="8s") as (base, data, log, _):
        publish_to(base, data, COMPONENTS / "hostile.wasm", "test/hostile", "1.0")
        wait_until_compiled("python", "javascript")
        yield base, log


async def run(client, tool, code, **extra):
    """Runs `code`; returns its report (asserting the call itself worked)."""
    result = await client.call_tool(tool, {"code": code, **extra})
    assert not result.is_error, text_of(result)
    return result.structured_content


def value(report):
    """The program's value, asserting it raised nothing."""
    assert report["error"] is None, report
    return report["result"]


@pytest.mark.anyio
async def test_javascript_calls_tools_by_name_through_accessors_and_at_once(server):
    base, log = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        # Top-level await, a call by name and one through the accessors.
        code = """const slug = await tools.call("examples.text.slugify", {text: "Hello, World!"});
const greeting = await tools.examples.hello.greet({name: "Ada"});
const counted = await tools.examples.text.count({text: "a b c"});
({slug, greeting, words: counted.words})"""
        got = value(await run(client, JS, code))
        assert got["slug"] == "hello-world"
        assert "Ada" in got["greeting"]
        assert got["words"] == 3
        # Twenty naps of 300 ms fanned out finish together, not one by one.
        code = """const t = Date.now();
const out = await Promise.all(Array.from({length: 20}, (_, i) => tools.test.hostile.nap({ms: 300}).then(() => i)));
[out.length, out[19], Date.now() - t]"""
        count, last, ms = value(await run(client, JS, code))
        assert (count, last) == (20, 19)
        assert ms < 300 * 20 * 0.3, f"20 naps of 300 ms took {ms} ms"
        # The audit log has the inner calls one level down, as the same caller.
        assert "depth=1" in log.read_text()
        # Only tools published as calling tools are given the calls, and say so.
        listed = {t.name: t for t in (await client.list_tools()).tools}
        for name in [JS, PY]:
            assert listed[name].meta["dev.toolmesh/requests"]["tools"] is True
            assert "calls to other tools, as its caller" in listed[name].description
        assert "tools" not in listed["examples.hello.greet"].meta["dev.toolmesh/requests"]


@pytest.mark.anyio
async def test_python_calls_tools_and_gathers_them(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        code = """slug = tools.examples.text.slugify(text="Code Mode, at last")
same = tools.call("examples.text.slugify", {"text": "Code Mode, at last"})
slugs = tools.gather([("examples.text.slugify", {"text": t}) for t in ["A b", "C d", "E f"]])
started = [tools.test.hostile.nap.start(ms=300) for _ in range(10)]
import time
t = time.monotonic()
tools.gather(started)
{"slug": slug, "same": same, "slugs": slugs, "ms": (time.monotonic() - t) * 1000}"""
        got = value(await run(client, PY, code))
        assert got["slug"] == got["same"] == "code-mode-at-last"
        assert got["slugs"] == ["a-b", "c-d", "e-f"]
        assert got["ms"] < 300 * 10 * 0.3, got
        # Search finds tools with TypeScript-style signatures.
        code = """found = tools.search("slug")
(found[0]["name"], found[0]["signature"], tools.describe("examples.hello.greet")["inputSchema"]["required"])"""
        name, signature, required = value(await run(client, PY, code))
        assert name == "examples.text.slugify"
        assert signature.startswith("examples.text.slugify(args: { ") and "text: string" in signature, signature
        assert required == ["name"]


@pytest.mark.anyio
async def test_failures_are_exceptions_the_code_can_catch(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        code = """const out = [];
for (const [name, args] of [["examples.nothing.here", {}], ["examples.text.slugify", {wrong: 1}], ["test.hostile.panic", {}]]) {
  try { await tools.call(name, args); out.push("no error"); } catch (e) { out.push([e.name, e.kind, e.tool, e.message]); }
}
out"""
        unknown, invalid, failed = value(await run(client, JS, code))
        assert unknown[:3] == ["ToolError", "unknown-tool", "examples.nothing.here"] and "unknown tool" in unknown[3]
        assert invalid[1] == "invalid-arguments" and "\"text\" is a required property" in invalid[3], invalid
        assert failed[1] == "failed" and failed[3], failed
        code = """out = []
for name, args in [("examples.nothing.here", {}), ("test.hostile.panic", {})]:
    try:
        tools.call(name, args)
    except ToolError as e:
        out.append([e.kind, e.tool])
out"""
        assert value(await run(client, PY, code)) == [["unknown-tool", "examples.nothing.here"], ["failed", "test.hostile.panic"]]
        # Uncaught, the error is the run's error.
        report = await run(client, PY, "tools.examples.nothing.here()")
        assert report["error"]["type"] == "ToolError", report


@pytest.mark.anyio
async def test_progress_of_inner_calls_reaches_the_client(server):
    base, _ = server
    seen = []

    async def on_progress(progress, total, message):
        seen.append(message)

    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        result = await client.call_tool(
            JS, {"code": "await tools.test.hostile.progress({steps: 3}); 'ok'"}, progress_callback=on_progress
        )
        assert result.structured_content["result"] == "ok", text_of(result)
    assert any(m and m.startswith("test.hostile.progress") for m in seen), seen


@pytest.mark.anyio
async def test_depth_and_count_are_limited(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        # run_python calling itself: the fourth level down is refused.
        nest = "r = tools.examples.python.run_python(code=src, vars={'src': src})\nr"
        report = await run(client, PY, nest, vars={"src": nest})
        level = value(report)
        for _ in range(2):
            level = value(level)
        assert level["error"]["type"] == "ToolError", level
        assert "nest at most 3 deep" in level["error"]["message"], level
        # One run may start 256 calls, then each start is refused at once.
        code = """let n = 0, why = null;
try { for (;;) { await tools.test.hostile.echo({text: "x"}); n++; } } catch (e) { why = [e.kind, e.message]; }
[n, why]"""
        n, why = value(await run(client, JS, code))
        assert n == 256 and why[0] == "limit" and "at most 256" in why[1], (n, why)


@pytest.mark.anyio
async def test_hostile_programs_are_contained_while_others_are_served(server):
    base, _ = server
    served = []

    async def others():
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            for i in range(40):
                result = await client.call_tool("examples.hello.greet", {"name": f"n{i}"})
                served.append(f"n{i}" in text_of(result))
                await anyio.sleep(0.1)

    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        async with anyio.create_task_group() as group:
            group.start_soon(others)
            # Calls in a loop that ignores every refusal: the time limit ends it.
            started = time.monotonic()
            result = await client.call_tool(
                JS, {"code": "for (;;) { try { await tools.test.hostile.echo({text: 'x'}) } catch (e) {} }"}
            )
            assert result.is_error and "time limit" in text_of(result), text_of(result)
            assert time.monotonic() - started < 20
            # Recursion through tools: stopped at the depth limit, an answer.
            spiral = "await tools.examples.javascript.run_javascript({code: src, vars: {src}})"
            report = await run(client, JS, spiral, vars={"src": spiral})
            assert report["error"] is None or report["error"]["type"] == "ToolError", report
            assert "nest at most 3 deep" in json.dumps(report), report
            # Results piling up unread: past 16 MiB they are refused, the rest arrive.
            code = """const calls = Array.from({length: 40}, () => tools.test.hostile.huge_output({bytes: 700000}));
const t = Date.now(); while (Date.now() - t < 3000) {}
const settled = await Promise.allSettled(calls);
[settled.filter(s => s.status === "fulfilled").length, settled.filter(s => s.status === "rejected").map(s => s.reason.kind)]"""
            ok, refused = value(await run(client, JS, code))
            assert ok > 0 and refused and set(refused) == {"limit"}, (ok, refused)
    assert served == [True] * 40


def test_a_caller_reaches_from_code_only_what_it_may_call(tmp_path):
    from test_oauth import Issuer, free_port, mcp_client

    issuer = Issuer()
    try:
        access = tmp_path / "access.toml"
        access.write_text(
            '[[allow]]\nscopes = ["tools:code"]\n'
            'tools = ["examples.python.*", "examples.javascript.*", "examples.hello.*"]\n'
        )
        port = free_port()
        flags = ["--oauth-issuer", issuer.url, "--access", str(access), "--public-url", f"http://127.0.0.1:{port}"]
        serving = start_gateway(tmp_path, *flags, examples=code_examples(), timeout="8s", addr=f"127.0.0.1:{port}")
        with serving as (base, _, _, _):
            wait_until_compiled("python", "javascript")
            token = issuer.mint(issuer.claims(f"{base}/mcp", sub="cody", scope="tools:code"))

            async def main():
                async with mcp_client(base, token) as client:
                    code = """out = [tools.examples.hello.greet(name="c")]
try:
    tools.examples.text.slugify(text="x")
except ToolError as e:
    out.append([e.kind, e.message])
out.append(sorted({t["name"].split(".")[1] for t in tools.search("")}))
out"""
                    greeting, refused, visible = value(await run(client, PY, code))
                    assert "c" in greeting
                    assert refused[0] == "unknown-tool" and "may not call `examples.text.slugify`" in refused[1]
                    assert visible == ["hello", "javascript", "python"], visible

            anyio.run(main)
    finally:
        issuer.close()


@pytest.mark.anyio
async def test_fan_out_from_code_spreads_over_a_two_node_mesh(tmp_path, registry):
    """A gateway and two nodes on a real NATS server: the inner calls of one
    run are placed like any calls, on both nodes, and their answers (one over
    the NATS payload limit) come back to the node running the code."""
    from test_mesh import Mesh, calls_on, publish

    with Mesh(tmp_path, registry) as mesh:
        publish(mesh, "javascript.wasm", "code/javascript")
        publish(mesh, "hostile.wasm", "test/hostile")
        logs = [mesh.node(f"runner-{i}", "--slots", "16")[0] for i in range(2)]
        base = mesh.gateway()
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            code = """const naps = await Promise.all(Array.from({length: 24}, () => tools.test.hostile.nap({ms: 200})));
const big = await tools.test.hostile.huge_output({bytes: 1045000});
const found = tools.search("nap").map(t => t.name);
[naps.length, big.length, found]"""
            deadline = time.monotonic() + 60
            while True:  # until the gateway has read both packages
                result = await client.call_tool("code.javascript.run_javascript", {"code": code})
                report = result.structured_content if not result.is_error else None
                if report and report["error"] is None or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.3)
            assert report and report["error"] is None, text_of(result)
            naps, size, found = report["result"]
            assert (naps, size) == (24, 1045000)
            assert found == ["test.hostile.nap"]
        # Nodes write their log lines in batches: wait (bounded) for the last.
        deadline = time.monotonic() + 2
        while sum(calls_on(log, "nap") for log in logs) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
        naps_on = [calls_on(log, "nap") for log in logs]
        assert sum(naps_on) == 24 and all(n > 0 for n in naps_on), naps_on


@pytest.mark.anyio
async def test_tool_search_mode_lists_a_few_tools_and_finds_the_rest(tmp_path):
    """`--tool-search`: the model sees search_tools and the code tools;
    search finds the others, ranked, with signatures; every tool stays
    callable by name, directly and from code."""
    with start_gateway(tmp_path, "--tool-search", examples=code_examples(), timeout="8s") as (base, _, _, _):
        wait_until_compiled("javascript")
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert set(listed) == {"search_tools", JS, PY}, set(listed)
            assert listed["search_tools"].output_schema["required"] == ["tools"]
            found = await client.call_tool("search_tools", {"query": "slug"})
            assert not found.is_error, text_of(found)
            first = found.structured_content["tools"][0]
            assert first["name"] == "examples.text.slugify"
            assert "text: string" in first["signature"] and first["description"].startswith("Turns a title")
            assert "examples.text.slugify(args: {" in text_of(found)
            ranked = (await client.call_tool("search_tools", {"query": "text", "limit": 3})).structured_content
            assert len(ranked["tools"]) == 3 and ranked["tools"][0]["name"].startswith("examples.text."), ranked
            # Unlisted tools answer by name, directly and from code.
            direct = await client.call_tool("examples.text.slugify", {"text": "Not Listed"})
            assert text_of(direct) == "not-listed"
            got = value(await run(client, JS, "await tools.examples.text.slugify({text: 'From Code'})"))
            assert got == "from-code"
            with pytest.raises(Exception, match="limit"):
                await client.call_tool("search_tools", {"query": "x", "limit": 1000})


def rss_mib(proc):
    """The resident memory of process `proc`, read from /proc."""
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def keyed(base, key):
    from test_oauth import mcp_client

    return mcp_client(base, key)


@pytest.mark.anyio
async def test_sessions_keep_state_apart_expire_and_are_bounded(tmp_path):
    from test_oauth import request

    keys = ["ann-key", "bob-key", "cy-key", "di-key"]
    flags = [f"--api-key={k}" for k in keys] + ["--session-ttl", "3s", "--sessions", "8", "--sessions-per-caller", "3"]
    with start_gateway(tmp_path, *flags, examples=code_examples(), timeout="3s") as (base, _, _, proc):
        wait_until_compiled("python", "javascript")
        async with keyed(base, "ann-key") as ann, keyed(base, "bob-key") as bob:
            # State carries over within a session: variables, functions, imports.
            assert value(await run(ann, JS, "var n = 40; function inc() { return ++n }; inc()", session="w")) == 41
            assert value(await run(ann, JS, "inc()", session="w")) == 42
            assert value(await run(ann, PY, "import statistics\nxs = [1, 2, 3]", session="w")) is None
            assert value(await run(ann, PY, "statistics.mean(xs + [6])", session="w")) == 3
            # Another session, no session, another caller naming the same id: fresh.
            assert value(await run(ann, JS, "typeof n", session="other")) == "undefined"
            assert value(await run(ann, JS, "typeof n")) == "undefined"
            assert value(await run(bob, JS, "typeof n", session="w")) == "undefined"
            # Listed per caller, and closable.
            status, _, listed = request(base, "GET", "/sessions", token="ann-key")
            assert status == 200
            assert sorted((s["tool"], s["id"]) for s in listed["sessions"]) == [(JS, "other"), (JS, "w"), (PY, "w")]
            assert request(base, "DELETE", f"/sessions/{JS}/other", token="bob-key")[0] == 404
            assert request(base, "DELETE", f"/sessions/{JS}/other", token="ann-key")[0] == 204
            assert value(await run(ann, JS, "typeof inc", session="w")) == "function", "closing one leaves the rest"
            # A run stopped by the time limit loses its session, and says so next time.
            stopped = await ann.call_tool(JS, {"code": "for (;;) {}", "session": "w"})
            assert stopped.is_error and "time limit" in text_of(stopped)
            lost = await ann.call_tool(JS, {"code": "n", "session": "w"})
            assert lost.is_error and "session lost" in text_of(lost), text_of(lost)
            assert value(await run(ann, JS, "typeof n", session="w")) == "undefined", "then a new one opens"
            # Idle past the TTL: lost, never silently fresh.
            assert value(await run(ann, JS, "var kept = 1; kept", session="idle")) == 1
            await anyio.sleep(4)
            idle = await ann.call_tool(JS, {"code": "kept", "session": "idle"})
            assert idle.is_error and "session lost" in text_of(idle), text_of(idle)

        # A flood of new sessions from every caller: refused past the bounds,
        # memory held to them.
        before = rss_mib(proc)
        refused = []
        for key in keys:
            async with keyed(base, key) as client:
                for i in range(12):
                    code = "var big = 'x'.repeat(4 << 20); big.length"
                    result = await client.call_tool(JS, {"code": code, "session": f"flood-{i}"})
                    if result.is_error:
                        refused.append(text_of(result))
        listed = [s for k in keys for s in request(base, "GET", "/sessions", token=k)[2]["sessions"]]
        held = len([s for s in listed if s["id"].startswith("flood-")])
        assert held <= 8, held
        assert len(refused) >= 4 * 12 - 8, len(refused)
        assert any("the most one caller may" in r for r in refused) and any("no room" in r for r in refused), refused[:3]
        grown = rss_mib(proc) - before
        assert grown < 8 * 64, f"{grown:.0f} MiB more after the flood"
        # The server still serves.
        async with keyed(base, "di-key") as client:
            assert value(await run(client, JS, "6 * 7")) == 42


@pytest.mark.anyio
async def test_a_session_stays_on_its_node_and_is_lost_with_it(tmp_path, registry):
    """Two nodes: a session's calls all go to the node holding it; when
    that node is killed the next call says "session lost"."""
    from test_mesh import Mesh, calls_on, publish, settled_calls_on
    from test_oauth import request

    with Mesh(tmp_path, registry) as mesh:
        publish(mesh, "javascript.wasm", "code/javascript")
        nodes = {f"runner-{i}": mesh.node(f"runner-{i}", "--id", f"runner-{i}") for i in range(2)}
        base = mesh.gateway()
        tool = "code.javascript.run_javascript"
        async with mcp.Client(f"{base}/mcp", mode="auto") as client:
            deadline = time.monotonic() + 60
            while True:  # until the gateway has read the package
                first = await client.call_tool(tool, {"code": "var x = 1; x", "session": "m"})
                if not first.is_error or time.monotonic() > deadline:
                    break
                await anyio.sleep(0.3)
            assert first.structured_content["result"] == 1, text_of(first)
            for expected in range(2, 8):
                assert value(await run(client, tool, "++x", session="m")) == expected
            (home,) = request(base, "GET", "/sessions")[2]["sessions"]
            log, proc = nodes[home["node"]]
            other = next(log for name, (log, _) in nodes.items() if name != home["node"])
            # Nodes write their log lines in batches: wait (bounded) for the last.
            assert settled_calls_on(log, 7) >= 7 and calls_on(other, "run_javascript") == 0
            proc.kill()
            proc.wait()
            await anyio.sleep(4)  # its advert lapses
            lost = await client.call_tool(tool, {"code": "x", "session": "m"})
            assert lost.is_error and "session lost" in text_of(lost), text_of(lost)
            # Told once; the id then opens a new session on the node left.
            assert value(await run(client, tool, "typeof x", session="m")) == "undefined"


SALES = "region,product,units\nnorth,apple,10\nsouth,pear,8\nnorth,pear,3\n"


@pytest.mark.anyio
async def test_files_go_in_and_what_the_code_writes_comes_back(server):
    import base64

    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        code = """rows = files.read("sales.csv").splitlines()[1:]
total = sum(int(r.split(",")[2]) for r in rows)
files.write("chart.svg", f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="4"/>')
files.write("summary.txt", f"units: {total}")
files.write("echo.bin", files.bytes("logo.bin")[::-1])
(total, files.list())"""
        logo = base64.b64encode(bytes([1, 2, 255])).decode()
        result = await client.call_tool(PY, {"code": code, "files": {"sales.csv": SALES, "logo.bin": {"base64": logo}}})
        assert not result.is_error, text_of(result)
        report = result.structured_content
        assert report["result"] == [21, ["chart.svg", "echo.bin", "logo.bin", "sales.csv", "summary.txt"]], report
        written = {f["name"]: f for f in report["files"]}
        assert written["summary.txt"]["text"] == "units: 21"
        assert base64.b64decode(written["echo.bin"]["base64"]) == bytes([255, 2, 1])
        assert written["chart.svg"]["image"] is True and "text" not in written["chart.svg"]
        images = [c for c in result.content if c.type == "image"]
        assert [i.mime_type for i in images] == ["image/svg+xml"]
        assert base64.b64decode(images[0].data) == b'<svg xmlns="http://www.w3.org/2000/svg" width="21" height="4"/>'
        # JavaScript alike; a session keeps its files between runs.
        first = await run(client, JS, "files.write('notes.md', '# kept'); 1", session="f")
        assert first["files"][0]["name"] == "notes.md"
        assert value(await run(client, JS, "files.read('notes.md')", session="f")) == "# kept"
        assert value(await run(client, JS, "files.list()")) == [], "without the session, no files"
        # Bad names and bad base64 are the caller's error, named.
        with pytest.raises(Exception, match="not a usable file name"):
            await client.call_tool(JS, {"code": "1", "files": {"../up": "x"}})
        with pytest.raises(Exception, match="base64"):
            await client.call_tool(PY, {"code": "1", "files": {"a.bin": {"base64": "%%%"}}})


@pytest.mark.anyio
async def test_the_documented_workflow_gives_the_same_answer_both_ways(server):
    """docs/code-execution.md's workflow: ten separate calls, and one
    program fanning the same calls out; every result must reach its own
    promise."""
    base, _ = server
    titles = [
        "Sandboxing untrusted tools with WebAssembly components",
        "Why agents should write code instead of calling tools one by one",
        "Content-addressed registries and the OCI distribution API",
        "Placing calls on a mesh of self-hosted nodes over NATS",
        "GPU compute for untrusted code through wgpu",
    ]
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        expected = []
        for text in titles:
            slug = text_of(await client.call_tool("examples.text.slugify", {"text": text}))
            words = (await client.call_tool("examples.text.count", {"text": text})).structured_content["words"]
            expected.append({"slug": slug, "words": words})
        expected = sorted(expected, key=lambda r: -r["words"])[:3]
        code = f"""const titles = {json.dumps(titles)};
const rows = await Promise.all(titles.map(async (text) => {{
  const [slug, counted] = await Promise.all([tools.examples.text.slugify({{text}}), tools.examples.text.count({{text}})]);
  return {{slug, words: counted.words}};
}}));
rows.sort((a, b) => b.words - a.words).slice(0, 3)"""
        assert value(await run(client, JS, code)) == expected
        py = f"""titles = {json.dumps(titles)}
slugs = tools.gather([("examples.text.slugify", {{"text": t}}) for t in titles])
counts = tools.gather([("examples.text.count", {{"text": t}}) for t in titles])
rows = [{{"slug": s, "words": c["words"]}} for s, c in zip(slugs, counts)]
sorted(rows, key=lambda r: -r["words"])[:3]"""
        assert value(await run(client, PY, py)) == expected
