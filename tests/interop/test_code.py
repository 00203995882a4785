"""Code execution for agents: `run_python` (CPython in a component) and
`run_javascript` (QuickJS in a component), published by `tool serve` as
examples and called through the official Python MCP SDK with programs an
agent would write, and with hostile ones. Every hostile run must end in a
clear result, and the next run must work.

Fixtures are in conftest.py.
"""

import hashlib
import json
import os
import re
import time

import anyio
import mcp
import pytest
from mcp.shared.exceptions import MCPError

from conftest import COMPONENTS, code_examples, start_gateway, until_listed, wait_until_compiled
from test_mcp import text_of

PY = "examples.python.run_python"
JS = "examples.javascript.run_javascript"

# Every module the tool's description promises.
PROMISED_MODULES = [
    "abc", "array", "base64", "binascii", "bisect", "calendar", "cmath", "collections", "collections.abc",
    "colorsys", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fnmatch",
    "fractions", "functools", "graphlib", "hashlib", "heapq", "hmac", "html", "html.parser", "io", "ipaddress",
    "itertools", "json", "keyword", "math", "numbers", "operator", "pprint", "random", "re", "secrets", "shlex",
    "sqlite3", "statistics", "string", "struct", "textwrap", "time", "tomllib", "typing", "unicodedata",
    "urllib.parse", "uuid", "xml.etree.ElementTree", "zlib",
]

SALES = """region,product,units,price
north,apple,10,0.5
south,apple,4,0.5
north,pear,3,1.25
south,pear,8,1.25
north,apple,6,0.5
"""


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `tool serve` for this module's runs, with the examples, the
    interpreters among them, calls limited to 3 s, and a variable in its
    environment that no run may see; yielded once the interpreters'
    optimised code is compiled, so no test runs on baseline code."""
    os.environ["TOOLMESH_TEST_SECRET"] = "do-not-leak"
    try:
        tmp = tmp_path_factory.mktemp("code")
        with start_gateway(tmp, examples=code_examples(), timeout="3s") as (base, _, log, _):
            wait_until_compiled("python", "javascript")
            yield base, log
    finally:
        del os.environ["TOOLMESH_TEST_SECRET"]


async def run(client, tool, code, **extra):
    """Runs `code`; returns the structured result (asserting the call itself worked)."""
    result = await client.call_tool(tool, {"code": code, **extra})
    assert not result.is_error, text_of(result)
    return result.structured_content


async def then_works(client, tool):
    """A plain run after a hostile one answers as usual (`6 * 7` is the
    same in both languages)."""
    assert (await run(client, tool, "6 * 7"))["result"] == 42


async def stops_runaways(client, tool, spin, flood):
    """A busy loop and a printing loop both meet the time limit, and the
    run after each works."""
    for code in (spin, flood):
        assert "time limit" in await fails(client, tool, code)
        await then_works(client, tool)


async def fails(client, tool, code):
    """Runs `code` that the node must stop; returns the error text."""
    result = await client.call_tool(tool, {"code": code})
    assert result.is_error, result.structured_content
    return text_of(result)


@pytest.mark.anyio
async def test_python_runs_what_an_agent_writes(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        tools = await until_listed(client, PY, seconds=60)
        described = tools[PY]
        assert described.output_schema["required"][:2] == ["stdout", "stderr"]
        for module in PROMISED_MODULES:
            assert module in described.description, module

        # Data wrangling: a CSV from `input`, grouped with statistics.
        out = await run(client, PY, """
import csv, io, statistics, sys
from collections import defaultdict
rows = list(csv.DictReader(io.StringIO(sys.stdin.read())))
revenue = defaultdict(float)
for r in rows:
    revenue[r["region"]] += int(r["units"]) * float(r["price"])
units = [int(r["units"]) for r in rows]
print(f"{len(rows)} rows")
{"revenue": dict(sorted(revenue.items())), "mean_units": statistics.mean(units),
 "median_units": statistics.median(units), "stdev": round(statistics.stdev(units), 6)}
""", input=SALES)
        assert out["stdout"] == "5 rows\n" and out["error"] is None, out
        assert out["result_type"] == "json"
        assert out["result"] == {
            "revenue": {"north": 11.75, "south": 12.0}, "mean_units": 6.2, "median_units": 6, "stdev": 2.863564,
        }

        # A regex task.
        log = "2026-11-02 ERROR disk /dev/sda1 full\n2026-11-03 INFO ok\n2026-11-04 ERROR net eth0 down\n"
        out = await run(client, PY, r"""
import re
[(m["date"], m["what"]) for m in re.finditer(r"^(?P<date>\d{4}-\d\d-\d\d) ERROR (?P<what>\w+)", text, re.M)]
""", vars={"text": log})
        assert out["result"] == [["2026-11-02", "disk"], ["2026-11-04", "net"]], out

        # A JSON transform over `vars`, and input().
        out = await run(client, PY, """
name = input()
by_team = {}
for p in people:
    by_team.setdefault(p["team"], []).append(p["name"])
print("hello", name)
{team: sorted(names) for team, names in sorted(by_team.items())}
""", input="agent\n", vars={"people": [
            {"name": "b", "team": "x"}, {"name": "a", "team": "x"}, {"name": "c", "team": "y"}]})
        assert out["stdout"] == "hello agent\n"
        assert out["result"] == {"x": ["a", "b"], "y": ["c"]}

        # Each promised module imports, and a few do real work.
        out = await run(client, PY, """
import importlib
missing = [m for m in modules if importlib.import_module(m) is None]
import sqlite3, hashlib, zlib, decimal, datetime, fractions, difflib, textwrap, uuid
db = sqlite3.connect(":memory:")
db.execute("create table t (k text, v int)")
db.executemany("insert into t values (?, ?)", [("a", 1), ("b", 2), ("a", 3)])
{"missing": missing,
 "sql": db.execute("select k, sum(v) from t group by k order by k").fetchall(),
 "sha": hashlib.sha256(b"toolmesh").hexdigest()[:16],
 "zlib": zlib.decompress(zlib.compress(b"x" * 1000)) == b"x" * 1000,
 "decimal": str(decimal.Decimal("0.1") + decimal.Decimal("0.2")),
 "date": (datetime.date(2026, 11, 22) - datetime.date(2026, 1, 1)).days,
 "fraction": str(fractions.Fraction(1, 3) + fractions.Fraction(1, 6)),
 "ratio": round(difflib.SequenceMatcher(None, "kitten", "sitting").ratio(), 4),
 "wrapped": textwrap.wrap("a b c d e f", 5),
 "uuid": len(str(uuid.uuid4()))}
""", vars={"modules": PROMISED_MODULES})
        import hashlib
        assert out["result"] == {
            "missing": [], "sql": [["a", 4], ["b", 2]], "sha": hashlib.sha256(b"toolmesh").hexdigest()[:16],
            "zlib": True, "decimal": "0.3", "date": 325, "fraction": "1/2", "ratio": 0.6154,
            "wrapped": ["a b c", "d e f"], "uuid": 36,
        }, out

        # An exception is a result, with the code's own frames.
        out = await run(client, PY, "def parse(s):\n    return int(s)\nparse('x')")
        error = out["error"]
        assert error["type"] == "ValueError" and "invalid literal" in error["message"], error
        assert 'File "<code>", line 2, in parse' in error["traceback"] and "app.py" not in error["traceback"]
        # Values JSON cannot hold come back as their repr.
        out = await run(client, PY, "{1, 2} | {3}")
        assert (out["result"], out["result_type"]) == ("{1, 2, 3}", "repr")
        out = await run(client, PY, "import sys\nprint('bye')\nsys.exit(4)")
        assert (out["stdout"], out["exit_code"], out["error"]) == ("bye\n", 4, None)
        # os._exit ends the run as sys.exit does, even where the code catches it.
        out = await run(client, PY, "import os\nprint('bye')\nos._exit(0)\nprint('never')")
        assert (out["stdout"], out["exit_code"], out["error"]) == ("bye\n", 0, None), out
        caught = "import os\nprint('before')\ntry:\n    os._exit(3)\nexcept BaseException:\n    print('after')\n'after'"
        out = await run(client, PY, caught)
        assert (out["stdout"], out["exit_code"], out["result"], out["error"]) == ("before\n", 3, None, None), out

        # Bad arguments are the caller's error, named.
        with pytest.raises(MCPError, match="not a name"):
            await client.call_tool(PY, {"code": "1", "vars": {"not a name": 1}})


@pytest.mark.anyio
async def test_hostile_python_ends_clearly_and_the_next_run_works(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, PY, seconds=60)
        await stops_runaways(client, PY, "while True: pass", "while True: print('flood')")
        for bomb in ["x = 'a' * 10**9", "x = [0] * 10**8", "x = []\nwhile True: x.append(bytearray(1 << 20))"]:
            out = await run(client, PY, bomb)
            assert out["error"]["type"] == "MemoryError", (bomb, out)
            await then_works(client, PY)
        out = await run(client, PY, "def f(n): return f(n + 1)\nf(0)")
        assert out["error"]["type"] == "RecursionError", out
        assert len(out["error"]["traceback"]) < 30_000
        # Recursion inside CPython's C code over deeply nested data can
        # exhaust the wasm stack before CPython notices: the node ends it.
        assert "call stack exhausted" in await fails(client, PY, "x = []\nfor i in range(100000): x = [x]\nrepr(x)")
        await then_works(client, PY)
        # Output is capped by what it takes in the result, so no output
        # makes the report outgrow the node's 1 MiB limit.
        for flood in ["for i in range(100000): print(i)", "print('😀' * 100000)",
                      "import sys\nprint('\\x01' * 100000)\nprint('\\x01' * 100000, file=sys.stderr)"]:
            out = await run(client, PY, flood)
            assert out["truncated"] and out["error"] is None, (flood, out["error"])
            assert out["stdout"].endswith("more characters dropped]") or out["stderr"].endswith("dropped]")
            assert len(json.dumps(out, ensure_ascii=False).encode()) < 500_000
        # What breaks the reporting of ordinary programs does not.
        out = await run(client, PY, "import sys\nsys.exit(True)")
        assert out["exit_code"] == 1, out
        out = await run(client, PY, "import builtins, sys\nbuiltins.print = None\nsys.exit('bye')")
        assert (out["exit_code"], out["stderr"]) == (1, "bye\n"), out
        out = await run(client, PY, "print('a\\ud800b')\n'\\udfff'")
        assert out["stdout"] == "a\\ud800b\n" and out["error"] is None, out
        # Large pieces: the memory limit comes long before the time limit, on any machine.
        out = await run(client, PY, "x = []\nwhile True: x.append(' ' * 100_000)")
        assert out["error"]["type"] == "MemoryError", out
        await then_works(client, PY)

        # No files, environment, sockets, processes, native code.
        expect = {
            "open('/etc/passwd').read()": "FileNotFoundError",
            "open('/tmp/x', 'w').write('x')": "FileNotFoundError",
            "import os; os.listdir('/')": "FileNotFoundError",
            "import socket": "ModuleNotFoundError",
            "import subprocess": "ModuleNotFoundError",
            "import ctypes": "ModuleNotFoundError",
            "import numpy": "ModuleNotFoundError",
            "import os; os.system('id')": "AttributeError",
            "import urllib.request": "ModuleNotFoundError",
            "import threading": "ModuleNotFoundError",
        }
        for code, kind in expect.items():
            out = await run(client, PY, code)
            assert out["error"] and out["error"]["type"] == kind, (code, out)
        out = await run(client, PY, "import os; dict(os.environ)")
        assert out["result"] == {}, out
        out = await run(client, PY, "import os; os.getcwd(), os.getpid()")
        assert "do-not-leak" not in json.dumps(out)

        # Host functions it was not given do not exist in the component.
        for module in ["wit_world.imports.gpu", "wit_world.imports.http", "wit_world.imports.scratch"]:
            out = await run(client, PY, f"import {module}")
            assert out["error"]["type"] == "ModuleNotFoundError", (module, out)

        # Every run starts clean: what one run changes, the next never sees.
        await run(client, PY, "import json, builtins, sys\njson.leak = 1\nbuiltins.leak = 2\nsys.modules['leak'] = 3\nleak = 4")
        out = await run(client, PY, "import json, builtins, sys\n[hasattr(json, 'leak'), hasattr(builtins, 'leak'), 'leak' in sys.modules, 'leak' in globals()]")
        assert out["result"] == [False, False, False, False], out


@pytest.mark.anyio
async def test_javascript_runs_what_an_agent_writes(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        tools = await until_listed(client, JS, seconds=60)
        assert "readline()" in tools[JS].description

        out = await run(client, JS, """
const [header, ...lines] = input.trim().split("\\n");
const keys = header.split(",");
const rows = lines.map(l => Object.fromEntries(l.split(",").map((v, i) => [keys[i], v])));
const revenue = {};
for (const r of rows) revenue[r.region] = (revenue[r.region] || 0) + r.units * r.price;
console.log(`${rows.length} rows`);
({revenue, units: rows.map(r => +r.units).sort((a, b) => a - b)})
""", input=SALES)
        assert out["stdout"] == "5 rows\n" and out["error"] is None, out
        assert out["result"] == {"revenue": {"north": 11.75, "south": 12}, "units": [3, 4, 6, 8, 10]}

        out = await run(client, JS, r"""
[...text.matchAll(/^(\d{4}-\d\d-\d\d) ERROR (\w+)/gm)].map(m => [m[1], m[2]])
""", vars={"text": "2026-11-02 ERROR disk full\n2026-11-03 INFO ok\n2026-11-04 ERROR net down\n"})
        assert out["result"] == [["2026-11-02", "disk"], ["2026-11-04", "net"]], out

        out = await run(client, JS, """
const name = readline();
console.error("warn", {n: people.length});
const byTeam = {};
for (const p of people) (byTeam[p.team] ||= []).push(p.name);
print("hello", name);
(async () => { await null; return Object.fromEntries(Object.entries(byTeam).map(([t, n]) => [t, n.sort()])) })()
""", input="agent\n", vars={"people": [{"name": "b", "team": "x"}, {"name": "a", "team": "x"}, {"name": "c", "team": "y"}]})
        assert (out["stdout"], out["stderr"]) == ("hello agent\n", "warn { n: 3 }\n"), out
        assert out["result"] == {"x": ["a", "b"], "y": ["c"]}

        out = await run(client, JS, "function parse(s) { return JSON.parse(s) }\nparse('{x')")
        assert out["error"]["type"] == "SyntaxError" and "<code>:1" in out["error"]["traceback"], out
        out = await run(client, JS, "new Map([[1, 'a']])")
        assert (out["result"], out["result_type"]) == ("Map(1) { 1 => \"a\" }", "repr")


@pytest.mark.anyio
async def test_hostile_javascript_ends_clearly_and_the_next_run_works(server):
    base, _ = server
    async with mcp.Client(f"{base}/mcp", mode="auto") as client:
        await until_listed(client, JS, seconds=60)
        await stops_runaways(client, JS, "for (;;) {}", "while (true) console.log('flood')")
        for bomb in ["'x'.repeat(2 ** 29)", "new Array(2 ** 28).fill(0)", "const a = []; for (;;) a.push(new ArrayBuffer(1 << 20))"]:
            out = await run(client, JS, bomb)
            assert out["error"] and re.search("out of memory|Invalid|RangeError", out["error"]["traceback"]), (bomb, out)
            await then_works(client, JS)
        deep = {
            "function f(n) { return f(n + 1) + 1 }\nf(0)": "RangeError",
            "JSON.parse('['.repeat(100000))": "RangeError",
            "let a = []; for (let i = 0; i < 100000; i++) a = [a]; JSON.stringify(a)": "RangeError",
            "let a = []; for (let i = 0; i < 100000; i++) a = [a]; String(a)": "RangeError",
            "eval('('.repeat(100000) + '1' + ')'.repeat(100000))": "RangeError",
            "let p = {}; for (let i = 0; i < 100000; i++) p = new Proxy(p, {}); p.x": "RangeError",
        }
        for code, kind in deep.items():
            out = await run(client, JS, code)
            assert out["error"] and out["error"]["type"] == kind, (code, out)
        await then_works(client, JS)
        for flood in ["for (let i = 0; i < 100000; i++) console.log(i)", "console.log('😀'.repeat(100000))",
                      "console.log('\\x01'.repeat(1e5)); console.error('\\x01'.repeat(1e5))",
                      "console.log('x'.repeat(5e7))"]:
            out = await run(client, JS, flood)
            assert out["truncated"] and out["error"] is None, (flood, out["error"])
            assert len(json.dumps(out, ensure_ascii=False).encode()) < 500_000
        out = await run(client, JS, "console.log('a\\ud800b'); JSON.stringify = null; ({x: 1})")
        assert (out["stdout"], out["result"]) == ("a\ufffdb\n", {"x": 1}), out

        # Nothing of the host is reachable from the language.
        out = await run(client, JS, "[typeof require, typeof process, typeof fetch, typeof setTimeout, typeof std, typeof os, typeof WebAssembly]")
        assert out["result"] == ["undefined"] * 7, out
        out = await run(client, JS, "import('os')")
        assert out["error"] is not None, out

        # Every run starts clean.
        await run(client, JS, "globalThis.leak = 1; Object.prototype.leak = 2; Array.prototype.push = null; var v = 3")
        out = await run(client, JS, "[typeof leak, ({}).leak, typeof [].push, typeof v]")
        assert out["result"] == ["undefined", None, "function", "undefined"], out


@pytest.mark.anyio
async def test_a_node_compiles_at_start_and_a_restart_answers_from_the_compile_cache(tmp_path):
    cache = tmp_path / "compiled"
    config = tmp_path / "sandbox.toml"
    config.write_text(f'cache_dir = "{cache}"\n')
    entries = None
    for attempt in range(2):
        with start_gateway(
            tmp_path, "-v", "--config", str(config), examples=code_examples(), timeout="3s"
        ) as (base, _, log, _):
            wanted = {hashlib.sha256((COMPONENTS / f"{n}.wasm").read_bytes()).hexdigest() for n in ("python", "javascript")}
            if attempt == 0:
                # Compiled at start, before any call: both interpreters' optimised code.
                until = time.monotonic() + 120
                while not wanted <= {p.name.split("-")[0] for p in cache.glob("*.cwasm")}:
                    assert time.monotonic() < until, "the node did not compile the interpreters at start"
                    time.sleep(0.1)
            async with mcp.Client(f"{base}/mcp", mode="auto") as client:
                await until_listed(client, PY, seconds=60)
                assert (await run(client, PY, "sum(range(10))"))["result"] == 45
                assert (await run(client, JS, "[1, 2].map(x => x * 3)"))["result"] == [3, 6]
            snapshot = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.cwasm") if p.name.split("-")[0] in wanted}
            if attempt == 0:
                entries = snapshot
                assert "published example repo=examples/python" in log.read_text()
            else:
                # The restart published nothing and compiled neither again.
                assert snapshot == entries and len(snapshot) == 2
                assert "published example" not in log.read_text()


@pytest.mark.anyio
async def test_a_burst_of_runs_from_many_clients_spreads_over_the_mesh(tmp_path, registry):
    """Code execution hosted for a team: two nodes and a gateway on NATS,
    20 clients sending 200 runs at once (Python and JavaScript)."""
    from test_mesh import Mesh, calls_on, publish, settled_calls_on

    clients, runs_each = 20, 10
    with Mesh(tmp_path, registry) as mesh:
        publish(mesh, "python.wasm", "code/python")
        publish(mesh, "javascript.wasm", "code/javascript")
        logs = [mesh.node(f"runner-{i}")[0] for i in range(2)]
        base = mesh.gateway()
        outcomes = []

        async def client_loop(c):
            async with mcp.Client(f"{base}/mcp", mode="auto") as client:
                await until_listed(client, "code.javascript.run_javascript", seconds=30)
                for r in range(runs_each):
                    n = c * runs_each + r
                    if n % 2:
                        tool, code = "code.python.run_python", f"print(sum(range({n})))"
                    else:
                        tool, code = "code.javascript.run_javascript", f"let s = 0; for (let i = 0; i < {n}; i++) s += i; console.log(s)"
                    result = await client.call_tool(tool, {"code": code})
                    outcomes.append((n, result.is_error, (result.structured_content or {}).get("stdout"), text_of(result)))

        with anyio.fail_after(240):
            async with anyio.create_task_group() as group:
                for c in range(clients):
                    group.start_soon(client_loop, c)

        failures = [o for o in outcomes if o[1] or o[2] != f"{sum(range(o[0]))}\n"]
        assert len(outcomes) == clients * runs_each and not failures, failures[:3]
        total = clients * runs_each
        per_node = [settled_calls_on(log, 1) for log in logs]
        assert sum(calls_on(log) for log in logs) == total, per_node
        assert all(count > 0 for count in per_node), per_node
