"""Write toolmesh tools in Python.

A tool is a typed function with the ``@tool`` decorator; its type hints are
its JSON Schema, its docstring its description::

    from dataclasses import dataclass
    from typing import Literal
    from toolmesh import tool

    @dataclass
    class Point:
        x: float
        y: float

    @tool(read_only=True)
    def distance(a: Point, b: Point, unit: Literal["m", "km"] = "m") -> float:
        \"\"\"The distance between two points.

        Args:
            a: Where to start.
            b: Where to end.
            unit: The unit of the answer.
        \"\"\"
        ...

With network access requested in ``tool.toml``, ``toolmesh.http.fetch``
reaches the hosts a node grants.

Results may also be ``Audio``, ``Embedded`` resources and ``Link``s (a
list of them is several items); ``@resource`` and ``@prompt`` offer
resources and prompts; ``toolmesh.ask`` asks the user, the client's model
or its roots.

``tool build`` turns the module into a WebAssembly component of the
toolmesh world with componentize-py; this package implements the world's
``handler`` and ``server`` exports from the decorated functions.
"""

from ._errors import InvalidArguments, ToolDefinitionError, ToolError
from ._host import log, progress, resource_updated
from ._offer import Audio, Embedded, Link, Message, prompt, prompts, resource, resources
from ._registry import Image, tool, tools
from . import ask, http

__all__ = [
    "Audio", "Embedded", "Image", "InvalidArguments", "Link", "Message", "ToolDefinitionError", "ToolError", "ask",
    "http", "log", "progress", "prompt", "prompts", "resource", "resource_updated", "resources", "tool", "tools",
]
