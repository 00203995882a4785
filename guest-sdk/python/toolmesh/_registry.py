"""The ``@tool`` decorator and the tools it registers."""

import dataclasses
import inspect
import re
import typing

from ._errors import ToolDefinitionError
from ._schema import Unsupported, schema_of

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SECTIONS = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Return|Raises|Yields|Examples?|Notes?):\s*$")


@dataclasses.dataclass(frozen=True)
class Image:
    """An image result: encoded bytes and their media type."""

    data: bytes
    mime_type: str = "image/png"


@dataclasses.dataclass
class Tool:
    """One registered tool."""

    name: str
    function: typing.Callable
    description: str
    parameters: dict
    input_schema: dict
    output_schema: dict | None
    annotations: dict


_TOOLS: dict[str, Tool] = {}


def tools() -> dict[str, Tool]:
    """Every tool registered so far, by name."""
    return _TOOLS


def _where(function) -> str:
    code = function.__code__
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno}"


def _docs(function) -> tuple[str, dict[str, str]]:
    """The description and the parameter docs (a Google-style ``Args:``
    section) of a docstring."""
    text = inspect.getdoc(function) or ""
    description, params, section, current = [], {}, None, None
    for line in text.splitlines():
        heading = _SECTIONS.match(line)
        if heading:
            section, current = heading.group(1), None
            continue
        if section is None:
            description.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            entry = re.match(r"^\s{0,8}(\*{0,2}\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$", line)
            if entry and (current is None or len(line) - len(line.lstrip()) <= params[current][1]):
                current = entry.group(1).lstrip("*")
                params[current] = (entry.group(2).strip(), len(line) - len(line.lstrip()))
            elif current and line.strip():
                params[current] = (f"{params[current][0]} {line.strip()}".strip(), params[current][1])
    return "\n".join(description).strip(), {k: v for k, (v, _) in params.items() if v}


def tool(function=None, *, name=None, description=None, title=None, read_only=None, destructive=None,
         idempotent=None, open_world=None, task=None):
    """Makes ``function`` a tool. Its parameters (keyword arguments of JSON
    types, see ``toolmesh._schema``) are the tool's arguments, its docstring
    the description, its return value the result: ``str`` as text, an
    ``Image``, ``None`` as nothing, anything else as JSON (structured
    content when it is an object). Raise ``ToolError`` to fail.

    ``task="optional"`` lets a client run a long call as a task (it polls
    for the result); ``task="required"`` runs every call as one."""

    def register(function):
        where = _where(function)
        tool_name = name or function.__name__
        if not _NAME.match(tool_name):
            raise ToolDefinitionError(f"{where}: tool name {tool_name!r} is not 1-64 of [A-Za-z0-9_.-]")
        if tool_name in _TOOLS:
            raise ToolDefinitionError(f"{where}: a tool named `{tool_name}` is already defined")
        if task not in (None, "optional", "required"):
            raise ToolDefinitionError(f"{where}: tool `{tool_name}`: task is 'optional' or 'required', not {task!r}")
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except Exception as e:  # a hint that does not resolve
            raise ToolDefinitionError(f"{where}: tool `{tool_name}`: its type hints cannot be read: {e}") from None
        summary, param_docs = _docs(function)
        properties, required, parameters = {}, [], {}
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ToolDefinitionError(f"{where}: tool `{tool_name}`: `{param.name}` cannot be a *args or **kwargs")
            if param.name not in hints:
                raise ToolDefinitionError(f"{where}: tool `{tool_name}`: parameter `{param.name}` has no type hint")
            try:
                schema = schema_of(hints[param.name])
            except Unsupported as e:
                raise ToolDefinitionError(f"{where}: tool `{tool_name}`: parameter `{param.name}`: {e}") from None
            if param.name in param_docs:
                schema = {**schema, "description": param_docs[param.name]}
            if param.default is not param.empty:
                try:
                    import json

                    json.dumps(param.default)
                    schema = {**schema, "default": param.default}
                except TypeError:
                    pass
            else:
                required.append(param.name)
            properties[param.name] = schema
            parameters[param.name] = hints[param.name]
        input_schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            input_schema["required"] = required
        if task is not None:
            # The gateway reads it; the tool never sees it.
            input_schema["x-toolmesh-task"] = task
        output_schema = None
        returns = hints.get("return")
        # An image is content of its own, not structured content.
        if returns is not None and returns is not Image:
            try:
                schema = schema_of(returns)
            except Unsupported:
                schema = None
            if schema and schema.get("type") == "object" and "properties" in schema:
                output_schema = schema
        hints_given = {"title": title, "read_only": read_only, "destructive": destructive,
                       "idempotent": idempotent, "open_world": open_world}
        _TOOLS[tool_name] = Tool(
            name=tool_name,
            function=function,
            description=(description or summary or tool_name).strip(),
            parameters=parameters,
            input_schema=input_schema,
            output_schema=output_schema,
            annotations=hints_given,
        )
        return function

    return register(function) if function is not None else register
