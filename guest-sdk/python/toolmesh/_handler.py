"""The toolmesh world's ``handler`` export, made from the registered tools.

``tool build`` compiles an entry module that imports the tool's module
(registering its tools) and this class.
"""

import json

from componentize_py_types import Err
from wit_world import exports
try:
    from wit_world.imports import types
except ImportError:
    # Built with wasi:http too (a tool that requests network access), the
    # bindings name the toolmesh types by their package.
    from wit_world.imports import toolmesh_tool_types as types

from ._errors import InvalidArguments, ToolError
from ._registry import Image, tools
from ._schema import from_json, to_json


class Handler(exports.Handler):
    """Describes and calls the tools registered with ``@tool``."""

    def describe(self):
        return [
            types.ToolDescriptor(
                name=t.name,
                description=t.description,
                input_schema=json.dumps(t.input_schema),
                output_schema=None if t.output_schema is None else json.dumps(t.output_schema),
                annotations=types.Annotations(**t.annotations),
            )
            for t in tools().values()
        ]

    def call(self, name, arguments):
        return content_of(run_tool(name, arguments))


def run_tool(name, arguments):
    """Runs tool ``name`` with JSON ``arguments``: its return value, or an
    ``Err`` with the tool error."""
    found = tools().get(name)
    if found is None:
        raise Err(types.ToolError_InvalidArguments(f"no tool named `{name}`"))
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except ValueError as e:
        raise Err(types.ToolError_InvalidArguments(f"the arguments are not JSON: {e}")) from None
    if not isinstance(args, dict):
        raise Err(types.ToolError_InvalidArguments("the arguments must be a JSON object"))
    try:
        unknown = [k for k in args if k not in found.parameters]
        if unknown:
            raise InvalidArguments(f"unknown argument `{unknown[0]}`")
        kwargs = {k: from_json(found.parameters[k], v, k) for k, v in args.items()}
        result = found.function(**kwargs)
    except InvalidArguments as e:
        raise Err(types.ToolError_InvalidArguments(str(e))) from None
    except ToolError as e:
        raise Err(types.ToolError_Failed(str(e))) from None
    except TypeError as e:
        # A required argument left out reaches the call as a TypeError.
        if "required" in str(e) and "argument" in str(e):
            raise Err(types.ToolError_InvalidArguments(str(e))) from None
        raise Err(types.ToolError_Failed(f"TypeError: {e}")) from None
    except Exception as e:
        raise Err(types.ToolError_Failed(f"{type(e).__name__}: {e}")) from None
    return result


def content_of(result):
    """A tool's return value as the ``handler`` interface carries it: what
    it cannot carry (audio, resources, links) as text saying what it was."""
    from ._offer import Audio, Embedded, Link
    if isinstance(result, (Audio, Embedded, Link)):
        return [types.Content_Text(f"[{result!r}]")]
    if isinstance(result, list) and any(isinstance(r, (Audio, Embedded, Link, Image)) for r in result):
        return [item for r in result for item in content_of(r)]
    if result is None:
        return []
    if isinstance(result, str):
        return [types.Content_Text(result)]
    if isinstance(result, Image):
        return [types.Content_Image(types.Image(data=bytes(result.data), mime_type=result.mime_type))]
    try:
        return [types.Content_Json(json.dumps(to_json(result), ensure_ascii=False, allow_nan=False))]
    except (TypeError, ValueError) as e:
        raise Err(types.ToolError_Failed(f"the result cannot be sent as JSON: {e}")) from None
