"""The official MCP conformance suite (`@modelcontextprotocol/conformance`,
server scenarios required by protocol 2026-07-28) against the gateway
serving only the conformance fixture component, under the bare names the
suite calls. Failures not listed, with reasons, in
tests/conformance/expected-failures.yml fail the test, and so does a listed
scenario that starts passing.

Run by scripts/test.sh, which installs the suite and sets
TOOLMESH_CONFORMANCE and TOOLMESH_NODE_BIN. Fixtures are in conftest.py.
"""

import os
import pathlib
import subprocess

from conftest import COMPONENTS, publish_to, start_gateway

CONFORMANCE = os.environ["TOOLMESH_CONFORMANCE"]
ENV = dict(os.environ, PATH=os.environ["TOOLMESH_NODE_BIN"] + os.pathsep + os.environ["PATH"])
EXPECTED = pathlib.Path(__file__).parent.parent / "conformance" / "expected-failures.yml"


def test_conformance_suite(tmp_path):
    empty = tmp_path / "no-examples"
    empty.mkdir()
    # Task fixtures work for a second or more: more than the tests' usual limit.
    with start_gateway(tmp_path, "--bare-names", "conformance/fixtures", examples=empty, timeout="10s") as (base, data, _, _):
        publish_to(base, data, COMPONENTS / "conformance.wasm", "conformance/fixtures", "1.0.0")
        done = subprocess.run(
            [CONFORMANCE, "server", "--url", f"{base}/mcp", "--requirements", "2026-07-28",
             "--expected-failures", str(EXPECTED), "-o", str(tmp_path / "results")],
            capture_output=True, text=True, timeout=600, env=ENV,
        )
        summary = [line for line in done.stdout.splitlines() if "Total:" in line or "nexpected" in line or "now pass" in line]
        print("\n".join(summary))
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
