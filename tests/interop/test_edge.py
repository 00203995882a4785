"""The MCP endpoint against hand-written raw JSON-RPC: malformed and
oversized requests, DNS-rebinding Host and Origin checks, API keys, the rate
limit, and raw stdio.

Fixtures are in conftest.py.
"""

import json
import subprocess

import http.client
import urllib.parse

from conftest import TOOL, start_gateway

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class Reply:
    def __init__(self, status, text):
        self.status_code = status
        self.text = text


def post(base, body, headers=None, raw=None):
    """POSTs to /mcp with exactly these headers (Host included)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    payload = raw if raw is not None else json.dumps(body).encode()
    all_headers = {"host": url.netloc, **HEADERS, **(headers or {})}
    conn.putrequest("POST", "/mcp", skip_host=True, skip_accept_encoding=True)
    for name, value in all_headers.items():
        conn.putheader(name, value)
    conn.putheader("content-length", str(len(payload)))
    conn.endheaders()
    try:
        conn.send(payload)
        response = conn.getresponse()
        return Reply(response.status, response.read().decode(errors="replace"))
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer (413) and close before the whole body is sent.
        response = conn.getresponse()
        return Reply(response.status, "")
    finally:
        conn.close()


def test_malformed_and_oversized_requests_get_clear_errors_and_the_server_keeps_serving(gateway):
    base, _, _ = gateway
    for raw in [b"{not json", b"[]", b'{"jsonrpc": "2.0"}', b"\xff\xfe"]:
        response = post(base, None, raw=raw)
        assert 400 <= response.status_code < 500, (raw, response.status_code, response.text)
    huge = json.dumps({**INIT, "padding": "x" * (5 << 20)})
    assert post(base, None, raw=huge.encode()).status_code == 413
    assert post(base, INIT).status_code == 200


def test_foreign_hosts_and_origins_are_refused(gateway):
    base, _, _ = gateway
    assert post(base, INIT, {"host": "evil.example"}).status_code in (400, 403, 421)
    assert post(base, INIT, {"origin": "http://evil.example"}).status_code == 403
    assert post(base, INIT, {"origin": "http://localhost:3000"}).status_code == 200


def test_api_keys_and_rate_limit(tmp_path):
    with start_gateway(tmp_path, "--api-key", "k-one", "--api-key", "k-two", "--rate-limit", "4") as (base, _, log, _):
        assert post(base, INIT).status_code == 401
        assert post(base, INIT, {"authorization": "Bearer wrong"}).status_code == 401
        statuses = [post(base, INIT, {"authorization": "Bearer k-one"}).status_code for _ in range(6)]
        assert statuses[:4] == [200] * 4 and statuses[-1] == 429, statuses
        assert post(base, INIT, {"authorization": "Bearer k-two"}).status_code == 200, "limits are per key"
        # /metrics is behind the same keys.
        url = urllib.parse.urlparse(base)
        for headers, status in [({}, 401), ({"authorization": "Bearer k-two"}, 200)]:
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            conn.request("GET", "/metrics", headers=headers)
            response = conn.getresponse()
            body = response.read().decode()
            conn.close()
            assert response.status == status, (response.status, body)
        assert "# TYPE toolmesh_gateway_in_flight gauge" in body, body
        assert "k-one" not in log.read_text() and "k-two" not in log.read_text()


def test_serve_refuses_a_public_address_without_keys(tmp_path):
    done = subprocess.run([TOOL, "serve", "--data", str(tmp_path), "--addr", "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--api-key" in done.stderr


def test_raw_stdio_answers_json_rpc_and_nothing_else(gateway):
    _, data, _ = gateway
    lines = [
        json.dumps(INIT),
        json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        "this is not json",
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "examples.hello.greet", "arguments": {"name": "stdio"}}}),
        json.dumps({"jsonrpc": "2.0", "id": 4, "method": "no/such/method"}),
    ]
    done = subprocess.run(
        [TOOL, "mcp", "--data", str(data)], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=60
    )
    messages = [json.loads(line) for line in done.stdout.splitlines()]  # every stdout line is JSON
    by_id = {m.get("id"): m for m in messages}
    assert by_id[1]["result"]["serverInfo"]["name"] == "toolmesh"
    assert len(by_id[2]["result"]["tools"]) == 17
    assert by_id[3]["result"]["content"][0]["text"] == "Hello, stdio!"
    assert by_id[4]["error"]["code"] == -32601
