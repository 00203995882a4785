"""Outbound HTTP for tools that request network access.

A tool whose ``tool.toml`` asks for hosts (``[permissions] network =
["https://api.example.com"]``) is built with ``wasi:http``, and runs only
on nodes whose policy grants those hosts. The node checks every request,
never follows redirects itself, and caps response bytes, request count and
waiting time per call::

    from urllib.parse import quote
    from toolmesh import http, tool

    @tool
    def weather(city: str) -> dict:
        \"\"\"Today's weather in a city.\"\"\"
        return http.fetch(f"https://api.example.com/weather?city={quote(city)}").json()

Outside a component (a tool's own tests in plain CPython) requests go out
with ``urllib``.
"""

import json as _json

from ._errors import ToolError

try:
    # Imported when the module is, so at build time: only modules imported
    # then exist inside the component.
    from componentize_py_types import Err as _Err
    from componentize_py_types import Ok as _Ok
    from wit_world.imports import outgoing_handler as _handler
    from wit_world.imports import streams as _streams
    from wit_world.imports import wasi_http_types as _types
except ImportError:
    _handler = None

try:
    from wit_world import exports as _exports  # noqa: F401  (inside a component)

    _INSIDE = True
except ImportError:
    _INSIDE = False

# Bytes of a response body read unless the call says otherwise.
DEFAULT_MAX_BYTES = 10 << 20
# What one blocking write may carry (wasi:io's limit).
_WRITE_CHUNK = 4096


class HttpError(ToolError):
    """A request that produced no response (refused by the node, a bad URL,
    an unreachable host, a body over the limit). Uncaught, it fails the
    call with its message."""


class Response:
    """A response, read whole."""

    def __init__(self, status: int, headers: list[tuple[str, bytes]], body: bytes):
        #: The status code.
        self.status = status
        #: Header names (lower case) and values, in the order received.
        self.headers = headers
        #: The body.
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), as text."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def text(self) -> str:
        """The body as text (UTF-8, undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise HttpError(f"the response is not JSON: {e}") from None

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300


def fetch(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
    json=None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Response:
    """Sends one request and reads its response, at most ``max_bytes`` of
    body. ``json`` sends a value as a JSON body (instead of ``body``).
    Redirects are returned, not followed."""
    headers = dict(headers or {})
    given = {k.lower() for k in headers}
    if json is not None:
        if body is not None:
            raise HttpError("give `body` or `json`, not both")
        body = _json.dumps(json)
        if "content-type" not in given:
            headers["content-type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in given:
        headers["content-length"] = str(len(body))
    scheme, authority, path = _split(url)
    if _INSIDE:
        if _handler is None:
            raise HttpError(
                "this tool was built without network access: request the hosts in tool.toml "
                '([permissions] network = ["https://…"]) and build it again'
            )
        return _send(method.upper(), scheme, authority, path, headers, body, max_bytes)
    return _send_outside(method.upper(), url, headers, body, max_bytes)


def _split(url: str) -> tuple[str, str, str]:
    """``(scheme, authority, path-and-query)`` of an absolute http(s) URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise HttpError(f"invalid URL {url!r}: it does not start with http:// or https://")
    rest = rest.split("#", 1)[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    if not authority or "@" in authority:
        raise HttpError(f"invalid URL {url!r}: it has no host, or a user name")
    return scheme, authority, path if path.startswith("/") else "/" + path


def _send(method, scheme, authority, path, headers, body, max_bytes) -> Response:
    methods = {
        "GET": _types.Method_Get(), "HEAD": _types.Method_Head(), "POST": _types.Method_Post(),
        "PUT": _types.Method_Put(), "DELETE": _types.Method_Delete(), "PATCH": _types.Method_Patch(),
        "OPTIONS": _types.Method_Options(),
    }
    try:
        fields = _types.Fields.from_list([(k.lower(), str(v).encode()) for k, v in headers.items()])
    except _Err as e:
        raise HttpError(f"a header was refused: {type(e.value).__name__.split('_')[-1]}") from None
    request = _types.OutgoingRequest(fields)
    for what, setter, value in (
        ("method", request.set_method, methods.get(method) or _types.Method_Other(method)),
        ("scheme", request.set_scheme, _types.Scheme_Https() if scheme == "https" else _types.Scheme_Http()),
        ("host", request.set_authority, authority),
        ("path", request.set_path_with_query, path),
    ):
        try:
            setter(value)
        except _Err:
            raise HttpError(f"invalid URL: the host refused the {what}") from None
    try:
        outgoing = request.body()
    except _Err:
        raise HttpError("request failed: its body was already taken") from None
    try:
        pending = _handler.handle(request, None)
    except _Err as e:
        raise HttpError(f"request failed: {_code(e.value)}") from None
    try:
        with outgoing.write() as stream:
            for start in range(0, len(body or b""), _WRITE_CHUNK):
                stream.blocking_write_and_flush(body[start : start + _WRITE_CHUNK])
    except _Err:
        # The request failed (refused by the node, say): the response
        # below carries why.
        pass
    try:
        _types.OutgoingBody.finish(outgoing, None)
    except _Err:
        pass
    with pending.subscribe() as ready:
        ready.block()
    got = pending.get()
    if not isinstance(got, _Ok):
        raise HttpError("request failed: the response was already taken")
    if isinstance(got.value, _Err):
        raise HttpError(f"request failed: {_code(got.value.value)}")
    response = got.value.value
    status = response.status()
    with response.headers() as fields:
        received = fields.entries()
    incoming = response.consume()
    data = bytearray()
    with incoming.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(64 << 10)
            except _Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    break
                raise HttpError(f"the response could not be read: {e.value.value.to_debug_string()}") from None
            if len(data) + len(chunk) > max_bytes:
                raise HttpError(f"the response is larger than {max_bytes} bytes")
            data += chunk
    _types.IncomingBody.finish(incoming)
    return Response(status, received, bytes(data))


def _code(code) -> str:
    """A ``wasi:http`` error code's name, as the host reported it."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return f"{name} ({value})" if isinstance(value, str) and value else name


def _send_outside(method, url, headers, body, max_bytes) -> Response:
    import urllib.error
    import urllib.request

    class _NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with opener.open(request, timeout=30) as answer:
            status, received, stream = answer.status, answer.getheaders(), answer
            data = stream.read(max_bytes + 1)
    except urllib.error.HTTPError as answer:
        status, received, data = answer.code, answer.headers.items(), answer.read(max_bytes + 1)
    except OSError as e:
        raise HttpError(f"request failed: {e}") from None
    if len(data) > max_bytes:
        raise HttpError(f"the response is larger than {max_bytes} bytes")
    return Response(status, [(k.lower(), v.encode("latin-1")) for k, v in received], data)
