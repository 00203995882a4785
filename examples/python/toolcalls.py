"""Calls from the code to other tools of the server, through the node's
`tools` capability: `tools.call(name, args)`, accessors such as
`tools.examples.text.slugify(text="Hi")`, and `tools.gather([...])` to run
calls at once. The gateway runs them as the outer call's caller, with its
rights and within its limits."""

import json

from componentize_py_types import Err
from wit_world.imports import tools as _host

# The kinds of failure, as the interface names them.
_KINDS = {
    "CallError_NotGranted": "not-granted",
    "CallError_UnknownTool": "unknown-tool",
    "CallError_InvalidArguments": "invalid-arguments",
    "CallError_Failed": "failed",
    "CallError_Limit": "limit",
}


class ToolError(Exception):
    """A call to a tool that produced no result: `kind` says why
    (not-granted, unknown-tool, invalid-arguments, failed, limit), `tool`
    names the tool."""

    def __init__(self, kind, message, tool):
        super().__init__(message)
        self.kind, self.message, self.tool = kind, message, tool


def _failure(error, tool):
    return ToolError(_KINDS.get(type(error).__name__, "failed"), str(getattr(error, "value", error)), tool)


def value_of(result):
    """What a call gives back: the structured result, else the text, else
    the content items."""
    structured = result.get("structuredContent")
    if structured is not None:
        return structured
    content = result.get("content") or []
    if all(item.get("type") == "text" for item in content):
        return "\n".join(item.get("text", "") for item in content)
    return content


class Pending:
    """A call started with `start`; `result()` waits for it and returns its
    value (or raises its ToolError)."""

    __slots__ = ("handle", "tool", "done", "_value", "_error")

    def __init__(self, handle, tool):
        self.handle, self.tool, self.done = handle, tool, False
        self._value = self._error = None

    def result(self):
        if not self.done:
            _wait([self])
        if self._error is not None:
            raise self._error
        return self._value

    def __repr__(self):
        return f"<call of {self.tool}: {'done' if self.done else 'running'}>"


def _wait(calls):
    """Waits until one of `calls` (not done) has finished, and records it."""
    handle, outcome = _host.wait_any([c.handle for c in calls])
    for call in calls:
        if call.handle == handle:
            call.done = True
            if isinstance(outcome, Err):
                call._error = _failure(outcome.value, call.tool)
            else:
                text = getattr(outcome, "value", outcome)
                call._value = value_of(json.loads(text))
            return
    raise ToolError("failed", f"the host answered call {handle}, which was not waited for", "")


def _arguments(args, kwargs):
    if args is None:
        args = kwargs
    elif kwargs:
        raise TypeError("give a tool's arguments as one dict or as keywords, not both")
    if not isinstance(args, dict):
        raise TypeError(f"a tool's arguments must be a dict, not {type(args).__name__}")
    return json.dumps(args)


class Tools:
    """The server's tools, callable from code."""

    def start(self, name, args=None, /, **kwargs):
        """Starts calling tool `name`; returns a Pending at once."""
        text = _arguments(args, kwargs)
        try:
            return Pending(_host.start(str(name), text), str(name))
        except Err as e:
            raise _failure(e.value, str(name)) from None

    def call(self, name, args=None, /, **kwargs):
        """Calls tool `name` with `args` (a dict, or keywords) and returns
        its value; raises ToolError when it fails."""
        return self.start(name, args, **kwargs).result()

    def gather(self, calls, return_exceptions=False):
        """Runs `calls` at once: each a Pending (from `start`) or a
        `(name, args)` pair. Returns their values in order; the first
        failure is raised unless `return_exceptions`, which puts each
        ToolError in its place instead."""
        started = []
        for item in calls:
            if isinstance(item, Pending):
                started.append(item)
            else:
                name, args = item
                try:
                    started.append(self.start(name, args))
                except ToolError as e:
                    if not return_exceptions:
                        raise
                    failed = Pending(0, name)
                    failed.done, failed._error = True, e
                    started.append(failed)
        while True:
            running = [c for c in started if not c.done]
            if not running:
                break
            _wait(running)
            if not return_exceptions:
                for call in started:
                    if call.done and call._error is not None:
                        raise call._error
        return [c._error if c._error is not None else c._value for c in started]

    def search(self, query=""):
        """The tools matching `query` (all when empty), best first: dicts
        with name, description, inputSchema, outputSchema and a
        TypeScript-style signature."""
        try:
            return json.loads(_host.describe(str(query)))
        except Err as e:
            raise _failure(e.value, "") from None

    def describe(self, name):
        """The description and schemas of tool `name`, or None."""
        for tool in self.search(name):
            if tool["name"] == name:
                return tool
        return None

    def __getattr__(self, part):
        if part.startswith("__"):
            raise AttributeError(part)
        return ToolPath(part)

    def __repr__(self):
        return "<tools: tools.call(name, args), tools.<name>(...), tools.gather([...]), tools.search(query)>"


class ToolPath:
    """A tool, or a part of tool names, reached by attributes:
    `tools.examples.text.slugify(text="Hi")` calls it,
    `.start(...)` starts it, `.doc` describes it."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __getattr__(self, part):
        if part.startswith("__"):
            raise AttributeError(part)
        return ToolPath(f"{self.name}.{part}")

    def __call__(self, args=None, /, **kwargs):
        return TOOLS.call(self.name, args, **kwargs)

    def start(self, args=None, /, **kwargs):
        return TOOLS.start(self.name, args, **kwargs)

    @property
    def doc(self):
        tool = TOOLS.describe(self.name)
        return None if tool is None else f"{tool['signature']}\n\n{tool['description']}"

    def __repr__(self):
        return f"<tool {self.name}>"


TOOLS = Tools()
