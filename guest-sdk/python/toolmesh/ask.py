"""Asking back: a form for the user (``elicit``), a completion from the
client's model (``sample``), the client's roots (``roots``).

A call is never suspended while it waits. A question without an answer yet
raises ``Pending``; let it end the call: the host asks the client and runs
the call again from the start with every answer so far. So ask the same
questions under the same keys on every run, before doing anything you
cannot repeat::

    from toolmesh import ask, tool

    @tool
    def greet() -> str:
        answer = ask.elicit("user_name", "What is your name?", {"name": str})
        return f"Hello, {answer.get('name', 'stranger')}!"

To ask several things at once, ask each with ``ask.later`` and collect them
with ``ask.gather``.

Outside a component there is no client: every question raises
``Unsupported``.
"""

import json

from ._errors import ToolError

try:
    from componentize_py_types import Err
    try:
        from wit_world.imports import ask as _ask
    except ImportError:
        from wit_world.imports import toolmesh_tool_ask as _ask
except ImportError:
    _ask = None


class Unsupported(ToolError):
    """The client cannot answer this kind of question."""


class Pending(ToolError):
    """Not answered yet: let the call end; it runs again with the answer."""


class Refused(ToolError):
    """The question was refused: malformed, too many, or this call cannot ask."""


def request(key: str, method: str, params: dict) -> dict:
    """Asks the client ``method`` with ``params``; ``key`` names the question
    within the call. The client's result."""
    if _ask is None:
        raise Unsupported("there is no client to ask outside a component")
    try:
        return json.loads(_ask.request(key, method, json.dumps(params)))
    except Err as e:
        error = e.value
        name = type(error).__name__
        message = getattr(error, "value", None) or "waiting for the client's answer"
        if name.endswith("Unsupported"):
            raise Unsupported(message) from None
        if name.endswith("Pending"):
            raise Pending(message) from None
        raise Refused(message) from None


_KINDS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def elicit(key: str, message: str, fields: dict) -> dict | None:
    """Asks the user to fill in a form of ``fields`` (name to ``str``,
    ``int``, ``float``, ``bool``, or a JSON Schema). The values, or ``None``
    when the user declined or dismissed it."""
    properties = {name: {"type": _KINDS[kind]} if kind in _KINDS else kind for name, kind in fields.items()}
    schema = {"type": "object", "properties": properties}
    answer = request(key, "elicitation/create", {"message": message, "requestedSchema": schema})
    return answer.get("content") or {} if answer.get("action") == "accept" else None


def sample(key: str, prompt: str, max_tokens: int = 500) -> str:
    """Asks the client's model to answer ``prompt``; the text of its reply."""
    params = {"messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": max_tokens}
    content = request(key, "sampling/createMessage", params).get("content")
    blocks = content if isinstance(content, list) else [content or {}]
    return "".join(b.get("text", "") for b in blocks if isinstance(b, dict))


def roots(key: str) -> list[dict]:
    """The client's roots: ``{"uri": …, "name": …}`` each."""
    return list(request(key, "roots/list", {}).get("roots") or [])


def later(function, *args):
    """Asks now, answers at ``gather``: a question among several asked together."""
    try:
        return ("answer", function(*args))
    except Pending as e:
        return ("pending", e)


def gather(*asked):
    """The answers of questions asked with ``later``; ends the call if any waits."""
    waiting = [value for kind, value in asked if kind == "pending"]
    if waiting:
        raise waiting[0]
    return [value for _, value in asked]
