"""`tool serve` as an OAuth 2.1 resource server (the MCP authorization
spec): protected resource metadata, challenges, JWT access tokens checked
against an issuer's keys, and scopes that decide which tools a caller sees
and may call.

Two issuers: a small one written here that serves its metadata and key set
on loopback and mints tokens by hand (good, forged and wrong ones), and a
real authorization server, the npm package `oidc-provider`, through which
the official MCP SDK's OAuth client signs in (dynamic registration,
authorization code with PKCE, the login and consent pages driven by the
test) and then lists and calls tools.
"""

import base64
import contextlib
import http.client
import http.server
import json
import os
import pathlib
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

import anyio
import httpx2
import mcp
import pytest
from conftest import start_gateway
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

NODE_BIN = os.environ.get("TOOLMESH_NODE_BIN")
# The npm prefix oidc-provider is installed under.
OIDC_PROVIDER = os.environ.get("TOOLMESH_OIDC_PROVIDER")
PROVIDER_SCRIPT = pathlib.Path(__file__).parent.parent / "oauth" / "provider.mjs"
ACCESS = """
[[allow]]
scopes = ["tools:hello"]
tools = ["examples.hello.*"]

[[allow]]
scopes = ["tools:all"]
groups = ["admins"]
tools = ["*"]
"""


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Issuer:
    """An issuer on loopback: RFC 8414 metadata, a JWKS of the keys it
    publishes (changed by `publish`), and tokens minted by hand. Counts the
    key set's fetches."""

    def __init__(self, slash=False):
        self.keys = {
            "rsa-1": ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "rsa-2": ("PS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "ec-1": ("ES256", ec.generate_private_key(ec.SECP256R1())),
            "ed-1": ("EdDSA", ed25519.Ed25519PrivateKey.generate()),
        }
        self.published = ["rsa-1", "ec-1", "ed-1"]
        self.fetches = 0
        issuer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/oauth-authorization-server":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.origin}/jwks",
                            "authorization_endpoint": f"{issuer.origin}/authorize",
                            "token_endpoint": f"{issuer.origin}/token"}
                elif self.path == "/jwks":
                    issuer.fetches += 1
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        # The issuer identifier, as tokens name it (some providers end it with a slash).
        self.url = self.origin + ("/" if slash else "")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def jwk(self, kid):
        alg, key = self.keys[kid]
        public = key.public_key()
        if alg in ("RS256", "PS256"):
            numbers = public.public_numbers()
            as_bytes = lambda n: n.to_bytes((n.bit_length() + 7) // 8, "big")  # noqa: E731
            return {"kty": "RSA", "kid": kid, "alg": alg, "use": "sig", "n": b64(as_bytes(numbers.n)),
                    "e": b64(as_bytes(numbers.e))}
        if alg == "ES256":
            numbers = public.public_numbers()
            return {"kty": "EC", "kid": kid, "alg": alg, "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
                    "y": b64(numbers.y.to_bytes(32, "big"))}
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "kid": kid, "alg": alg, "crv": "Ed25519", "x": b64(raw)}

    def claims(self, audience, **overrides):
        now = int(time.time())
        claims = {"iss": self.url, "sub": "alice", "aud": audience, "iat": now, "exp": now + 300,
                  "scope": "tools:hello"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, claims, kid="rsa-1", alg=None, header=None):
        """A token of `claims` signed by the key `kid` (`alg` overrides the header's algorithm)."""
        key_alg, key = self.keys[kid]
        head = {"alg": alg or key_alg, "typ": "at+jwt", "kid": kid, **(header or {})}
        signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}".encode()
        if key_alg == "RS256":
            signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif key_alg == "PS256":
            signature = key.sign(signing_input, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        elif key_alg == "ES256":
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = key.sign(signing_input)
        return f"{signing_input.decode()}.{b64(signature)}"


def hmac_with_public_key(issuer, audience):
    """The classic forgery: HS256 keyed with the issuer's public RSA key."""
    import hmac

    public = issuer.keys["rsa-1"][1].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(issuer.claims(audience)).encode())
    signature = hmac.new(public, f"{head}.{body}".encode(), "sha256").digest()
    return f"{head}.{body}.{b64(signature)}"


def tampered(token, claims):
    """`token` with its payload replaced and its signature kept."""
    head, _, signature = token.split(".")
    return f"{head}.{b64(json.dumps(claims).encode())}.{signature}"


@contextlib.contextmanager
def oauth_server(tmp_path, issuer_url, *extra):
    """`tool serve` on a free port with --public-url naming it, accepting
    `issuer_url`'s tokens and the API key `headless-key`; yields (base, log)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    access = tmp_path / "access.toml"
    access.write_text(ACCESS)
    flags = ["--public-url", public, "--oauth-issuer", issuer_url, "--access", str(access), "--api-key",
             "headless-key", *extra]
    with start_gateway(tmp_path, *flags, addr=f"127.0.0.1:{port}") as (base, _data, log, _proc):
        assert base == public
        yield base, log


def request(base, method, path, body=None, token=None, extra=None):
    """One HTTP request with exactly these credentials (and `extra`
    headers); (status, headers, JSON or text)."""
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream", **(extra or {})}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    text = response.read().decode(errors="replace")
    conn.close()
    try:
        text = json.loads(text)
    except ValueError:
        pass
    return response.status, {k.lower(): v for k, v in response.getheaders()}, text


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}


def call(tool, id=7):
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {"name": "x"}}}


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def issuer():
    issuer = Issuer()
    yield issuer
    issuer.close()


def test_metadata_and_challenges_point_clients_at_the_issuer(tmp_path, issuer):
    with oauth_server(tmp_path, issuer.url) as (base, _log):
        for path in ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]:
            status, headers, doc = request(base, "GET", path)
            assert status == 200, (path, doc)
            assert doc["resource"] == f"{base}/mcp"
            assert doc["authorization_servers"] == [issuer.url]
            assert doc["scopes_supported"] == ["tools:all", "tools:hello"]
            assert headers["access-control-allow-origin"] == "*"
        status, headers, body = request(base, "POST", "/mcp", INIT)
        assert status == 401
        challenge = headers["www-authenticate"]
        assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
        assert 'scope="tools:all tools:hello"' in challenge
        assert "sign in" in body["error"]["message"]
        # The API key still opens the door, without OAuth.
        assert request(base, "POST", "/mcp", INIT, token="headless-key")[0] == 200


def test_good_tokens_pass_and_forged_or_wrong_ones_get_401(tmp_path, issuer):
    other = Issuer()
    try:
        with oauth_server(tmp_path, issuer.url) as (base, _log):
            aud = f"{base}/mcp"
            good = lambda **c: issuer.claims(aud, **c)  # noqa: E731
            for kid in ["rsa-1", "ec-1", "ed-1"]:
                status, _, body = request(base, "POST", "/mcp", INIT, token=issuer.mint(good(), kid=kid))
                assert status == 200, (kid, body)
            now = int(time.time())
            unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(good()).encode())}."
            forged = {
                "alg none": unsigned,
                "HS256 keyed with the public key": hmac_with_public_key(issuer, aud),
                "wrong aud": issuer.mint(good(aud="https://other.example.com/mcp")),
                "no aud": issuer.mint(good(aud=None)),
                "untrusted iss": other.mint(other.claims(aud)),
                "trusted iss, another's key": other.mint({**other.claims(aud), "iss": issuer.url}),
                "expired": issuer.mint(good(exp=now - 120)),
                "not yet valid": issuer.mint(good(nbf=now + 600)),
                "no exp": issuer.mint(good(exp=None)),
                "unknown kid": issuer.mint(good(), header={"kid": "nobody"}),
                "RS256 header on the EC key": issuer.mint(good(), kid="ec-1", alg="RS256"),
                "a published key not yet rotated in": issuer.mint(good(), kid="rsa-2"),
                "an ID token": issuer.mint(good(nonce="n-0S6")),
                "another type of JWT": issuer.mint(good(), header={"typ": "secevent+jwt"}),
                "tampered payload": tampered(issuer.mint(good()), good(sub="mallory", scope="tools:all")),
                "garbage": "not-a-token",
            }
            for what, token in forged.items():
                status, headers, body = request(base, "POST", "/mcp", INIT, token=token)
                assert status == 401, (what, status, body)
                assert 'error="invalid_token"' in headers["www-authenticate"], what
    finally:
        other.close()


def test_an_issuer_ending_in_a_slash_is_taken_as_written(tmp_path):
    issuer = Issuer(slash=True)
    try:
        with oauth_server(tmp_path, issuer.url) as (base, _log):
            assert request(base, "GET", "/.well-known/oauth-protected-resource")[2]["authorization_servers"] == [issuer.url]
            status, _, body = request(base, "POST", "/mcp", INIT, token=issuer.mint(issuer.claims(f"{base}/mcp")))
            assert status == 200, body
            unslashed = issuer.mint(issuer.claims(f"{base}/mcp", iss=issuer.origin))
            assert request(base, "POST", "/mcp", INIT, token=unslashed)[0] == 401
    finally:
        issuer.close()


def test_keys_rotate_and_unknown_kids_do_not_flood_the_issuer(tmp_path, issuer):
    with oauth_server(tmp_path, issuer.url) as (base, _log):
        aud = f"{base}/mcp"
        old = issuer.mint(issuer.claims(aud), kid="rsa-1")
        assert request(base, "POST", "/mcp", INIT, token=old)[0] == 200
        fetched = issuer.fetches
        # Tokens naming keys nobody has: at most one fetch in the refetch interval.
        for n in range(20):
            assert request(base, "POST", "/mcp", INIT, token=issuer.mint(issuer.claims(aud), header={"kid": f"x{n}"}))[0] == 401
        assert issuer.fetches - fetched <= 1, issuer.fetches - fetched
        # The issuer rotates rsa-1 out and rsa-2 in; once the interval has
        # passed, a token by the new key makes the server fetch again, and
        # the retired key stops working.
        issuer.published = ["rsa-2"]
        time.sleep(5.5)
        new = issuer.mint(issuer.claims(aud), kid="rsa-2")
        status, _, body = request(base, "POST", "/mcp", INIT, token=new)
        assert status == 200, body
        status, headers, _ = request(base, "POST", "/mcp", INIT, token=old)
        assert status == 401 and "no key of that id" in headers["www-authenticate"]


def logged(log, text, seconds=5):
    """Whether `text` reaches the server's log within `seconds` (it is written from a thread of its own)."""
    until = time.monotonic() + seconds
    while text not in log.read_text():
        if time.monotonic() > until:
            return False
        time.sleep(0.05)
    return True


def mcp_client(base, token):
    http_client = httpx2.AsyncClient(headers={"authorization": f"Bearer {token}"})
    return mcp.Client(streamable_http_client(f"{base}/mcp", http_client=http_client), mode="legacy")


@pytest.mark.anyio
async def test_scopes_decide_what_each_caller_sees_and_may_call(tmp_path, issuer):
    with oauth_server(tmp_path, issuer.url) as (base, log):
        aud = f"{base}/mcp"
        hello_only = issuer.mint(issuer.claims(aud, sub="hal", scope="tools:hello"))
        everything = issuer.mint(issuer.claims(aud, sub="eve", scope="openid tools:all"))
        by_group = issuer.mint(issuer.claims(aud, sub="gus", scope="openid", groups=["admins"]))
        nothing = issuer.mint(issuer.claims(aud, sub="nat", scope="openid"))
        seen = {}
        for name, token in [("hal", hello_only), ("eve", everything), ("gus", by_group), ("nat", nothing)]:
            async with mcp_client(base, token) as client:
                seen[name] = {t.name for t in (await client.list_tools()).tools}
        assert seen["hal"] and all(name.startswith("examples.hello.") for name in seen["hal"]), seen["hal"]
        assert seen["hal"] < seen["eve"] and seen["eve"] == seen["gus"]
        assert seen["nat"] == set()
        other = sorted(seen["eve"] - seen["hal"])[0]
        async with mcp_client(base, hello_only) as client:
            result = await client.call_tool("examples.hello.greet", {"name": "hal"})
            assert "hal" in result.content[0].text
        # A call beyond the token's scopes: the step-up answer, before the call is read.
        status, headers, body = request(base, "POST", "/mcp", call(other, id=41), token=hello_only)
        assert status == 403, body
        assert 'error="insufficient_scope"' in headers["www-authenticate"]
        assert 'scope="tools:all"' in headers["www-authenticate"]
        assert body["id"] == 41 and "tools:all" in body["error"]["message"]
        assert request(base, "POST", "/mcp", call(other), token=everything)[0] != 403
        # The audit line names who called, never the token.
        assert logged(log, "caller=hal tool=examples.hello.greet"), "no audit line names the caller"
        assert hello_only not in log.read_text()
        # Metrics count calls per caller.
        status, _, metrics = request(base, "GET", "/metrics", token="headless-key")
        assert status == 200
        assert 'toolmesh_gateway_caller_calls_total{caller="hal",outcome="ok"} 1' in metrics, metrics
        # Usage: a token holder sees its own; the API key sees everyone's.
        async with mcp_client(base, everything) as client:
            assert "eve" in (await client.call_tool("examples.hello.greet", {"name": "eve"})).content[0].text
        status, _, mine = request(base, "GET", "/usage", token=hello_only)
        assert status == 200 and {r["caller"] for r in mine["usage"]} == {"hal"}, mine
        status, _, everyone = request(base, "GET", "/usage", token="headless-key")
        assert {r["caller"] for r in everyone["usage"]} == {"hal", "eve"}, everyone


def test_a_session_is_usable_only_by_whoever_opened_it(tmp_path):
    with start_gateway(tmp_path, "--api-key", "alice-key", "--api-key", "bob-key") as (base, _data, _log, _proc):
        status, headers, body = request(base, "POST", "/mcp", INIT, token="alice-key")
        assert status == 200, body
        session = {"mcp-session-id": headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
        # Someone else holding the id: as if there were no such session.
        status, _, body = request(base, "POST", "/mcp", listing, token="bob-key", extra=session)
        assert status == 404 and "no such session" in body["error"]["message"], (status, body)
        assert request(base, "POST", "/mcp", initialized, token="alice-key", extra=session)[0] == 202
        status, _, body = request(base, "POST", "/mcp", listing, token="alice-key", extra=session)
        if isinstance(body, str):  # a stream of one event
            body = json.loads(re.search(r"^data: ?(\{.*)$", body, re.M).group(1))
        assert status == 200 and body["result"]["tools"], body
        # An id this server never gave out.
        made_up = {**session, "mcp-session-id": "made-up"}
        assert request(base, "POST", "/mcp", listing, token="alice-key", extra=made_up)[0] == 404


class Memory:
    """Token storage in memory, as the SDK's examples keep it."""

    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Person:
    """Does in the authorization server's pages what a person would: signs
    in as `user`, consents, and hands the redirect's code back."""

    def __init__(self, user, redirect_uri):
        self.user = user
        self.redirect_uri = redirect_uri
        self.url = None
        self.pages = []

    async def open(self, url):
        self.url = url

    async def finish(self):
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as browser:
            url = self.url
            response = await browser.get(url)
            for _ in range(12):
                if response.is_redirect:
                    url = urllib.parse.urljoin(url, response.headers["location"])
                    if url.startswith(self.redirect_uri):
                        query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
                        assert "code" in query, query
                        return AuthorizationCodeResult(code=query["code"][0], state=query.get("state", [None])[0],
                                                       iss=query.get("iss", [None])[0])
                    response = await browser.get(url)
                    continue
                assert response.status_code == 200, (url, response.status_code, response.text[:500])
                page = response.text
                self.pages.append(page)
                action = re.search(r'action="([^"]+)"', page).group(1)
                prompt = re.search(r'name="prompt" value="(\w+)"', page).group(1)
                form = {"prompt": prompt}
                if prompt == "login":
                    form.update(login=self.user, password="any")
                url = urllib.parse.urljoin(url, action)
                response = await browser.post(url, data=form)
            raise AssertionError("the sign-in did not end at the redirect")


@contextlib.contextmanager
def oidc_provider(tmp_path, resource, scopes, *extra):
    """oidc-provider on a free loopback port for `resource`; yields its
    issuer URL. `extra`: `opaque` for opaque tokens and introspection."""
    port = free_port()
    env = {**os.environ, "PATH": f"{NODE_BIN}:{os.environ['PATH']}"}
    log = tmp_path / "oidc-provider.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(["node", str(PROVIDER_SCRIPT), OIDC_PROVIDER, str(port), resource, scopes, *extra], env=env,
                                stdout=subprocess.PIPE, stderr=sink, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("issuer "), line + log.read_text()
        yield line.split()[1]
    finally:
        proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def served_with_provider(tmp_path, scopes, *extra, access=ACCESS, provider=()):
    """oidc-provider (its `provider` arguments) issuing tokens with `scopes`
    for a `tool serve` on a free port that trusts it, with the access
    policy `access` and `extra` flags; yields (base URL, issuer URL, log)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    with oidc_provider(tmp_path, f"{public}/mcp", scopes, *provider) as issuer_url:
        policy = tmp_path / "access.toml"
        policy.write_text(access)
        flags = ["--public-url", public, "--oauth-issuer", issuer_url, "--access", str(policy), *extra]
        with start_gateway(tmp_path, *flags, addr=f"127.0.0.1:{port}") as (base, _data, log, _proc):
            yield base, issuer_url, log


async def sign_in_with_sdk(base, user):
    """The official SDK's OAuth client signs in as `user` (dynamic
    registration, authorization code with PKCE), lists the tools and calls
    one; returns (tool names, the call's text, the tokens)."""
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    person = Person(user, redirect)
    metadata = OAuthClientMetadata(client_name=f"interop {user}", redirect_uris=[redirect],
                                   grant_types=["authorization_code", "refresh_token"],
                                   response_types=["code"], token_endpoint_auth_method="none")
    storage = Memory()
    provider = OAuthClientProvider(f"{base}/mcp", metadata, storage, person.open, person.finish)
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http_client:
        async with mcp.Client(streamable_http_client(f"{base}/mcp", http_client=http_client), mode="legacy") as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            greeting = await client.call_tool("examples.hello.greet", {"name": user})
    assert person.pages, "the client never went through the sign-in pages"
    return tools, greeting.content[0].text, storage.tokens


@pytest.mark.anyio
@pytest.mark.skipif(not OIDC_PROVIDER, reason="needs TOOLMESH_OIDC_PROVIDER (scripts/test.sh installs it)")
async def test_opaque_tokens_are_checked_by_asking_the_issuer(tmp_path, monkeypatch):
    # Without its secret, the flag is refused at start.
    monkeypatch.delenv("TOOLMESH_OAUTH_CLIENT_SECRET", raising=False)
    flags = ["--public-url", "http://127.0.0.1:9", "--oauth-issuer", "http://127.0.0.1:9",
             "--oauth-introspection-client", "toolmesh"]
    with start_gateway(tmp_path, *flags, wait=False) as (_, _data, log, proc):
        assert proc.wait(timeout=30) == 2
        assert "TOOLMESH_OAUTH_CLIENT_SECRET" in log.read_text()
    monkeypatch.setenv("TOOLMESH_OAUTH_CLIENT_SECRET", "introspection-secret")
    with served_with_provider(tmp_path, "tools:hello tools:all", "--oauth-introspection-client", "toolmesh",
                              provider=["opaque"]) as (base, _issuer, log):
        tools, greeting, tokens = await sign_in_with_sdk(base, "hal")
        assert "." not in tokens.access_token, "the issuer made an opaque token"
        assert "hal" in greeting and "examples.hello.greet" in tools
        assert logged(log, "caller=hal tool=examples.hello.greet")
        # A token the issuer does not know: inactive, so 401.
        status, headers, body = request(base, "POST", "/mcp", INIT, token="not-a-token-anyone-issued")
        assert status == 401, body
        assert 'error="invalid_token"' in headers["www-authenticate"] and "not active" in body["error"]["message"]
        # The good one again: still accepted (from the kept answer or a new question).
        assert request(base, "POST", "/mcp", INIT, token=tokens.access_token)[0] == 200


@pytest.mark.anyio
@pytest.mark.skipif(not OIDC_PROVIDER, reason="needs TOOLMESH_OIDC_PROVIDER (scripts/test.sh installs it)")
async def test_the_official_client_signs_in_through_a_real_authorization_server(tmp_path):
    with served_with_provider(tmp_path, "tools:hello tools:all") as (base, _issuer, log):
        results = {user: await sign_in_with_sdk(base, user) for user in ["hal", "admin-ada"]}
        hal_tools, hal_greeting, hal_tokens = results["hal"]
        ada_tools, _, ada_tokens = results["admin-ada"]
        assert "hal" in hal_greeting
        # Both asked for every scope the server names; the provider granted
        # them, so both see everything; the admin also by group.
        assert set(hal_tokens.scope.split()) == {"tools:hello", "tools:all"}
        assert hal_tools == ada_tools and "examples.hello.greet" in hal_tools
        claims = json.loads(base64.urlsafe_b64decode(ada_tokens.access_token.split(".")[1] + "=="))
        assert claims["aud"] == f"{base}/mcp" and claims["sub"] == "admin-ada" and claims["groups"] == ["admins"]
        assert logged(log, "caller=admin-ada"), "no audit line names the caller"


@pytest.mark.skipif(not OIDC_PROVIDER, reason="needs TOOLMESH_OIDC_PROVIDER (scripts/test.sh installs it)")
def test_the_mcp_inspector_signs_in_and_calls(tmp_path):
    """The MCP Inspector's own OAuth flow (its CLI: discovery from the 401,
    dynamic registration, authorization code with PKCE, its loopback
    callback), the sign-in pages driven as a person would."""
    inspector = os.environ.get("TOOLMESH_INSPECTOR")
    if not inspector:
        pytest.skip("needs TOOLMESH_INSPECTOR (scripts/test.sh installs it)")
    with served_with_provider(tmp_path, "tools:hello tools:all") as (base, _issuer, log):
        callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
        # The person is this test: the Inspector's "open a browser" does nothing.
        fake = tmp_path / "bin"
        fake.mkdir()
        for opener in ["xdg-open", "open"]:
            (fake / opener).write_text("#!/bin/sh\nexit 0\n")
            (fake / opener).chmod(0o755)
        env = {**os.environ, "PATH": f"{fake}:{NODE_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path / "home"),
               "MCP_AUTO_OPEN_ENABLED": "true", "NO_COLOR": "1"}
        proc = subprocess.Popen(
            [inspector, "--cli", f"{base}/mcp", "--method", "tools/call", "--tool-name", "examples.hello.greet",
             "--tool-arg", "name=inspector", "--callback-url", callback, "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            url, seen = None, []
            deadline = time.monotonic() + 60
            while url is None and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                seen.append(line)
                found = re.search(r"(http://127\.0\.0\.1:\d+/\S*auth\S*)", re.sub(r"\x1b\[[0-9;]*m|\x1b\]8;;[^\x07]*\x07", "", line))
                if found:
                    url = found.group(1)
            assert url, "".join(seen)
            person = Person("hal", callback)
            anyio.run(person.open, url)
            code = anyio.run(person.finish)
            assert person.pages, "the Inspector never sent anyone through the sign-in pages"
            query = urllib.parse.urlencode({"code": code.code, "state": code.state, **({"iss": code.iss} if code.iss else {})})
            with urllib.request.urlopen(f"{callback}?{query}", timeout=30) as answer:
                assert answer.status == 200
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, "".join(seen) + err
        result = json.loads(out)
        result = result.get("result", result)
        assert "inspector" in result["content"][0]["text"], out
        assert logged(log, "caller=hal tool=examples.hello.greet")
