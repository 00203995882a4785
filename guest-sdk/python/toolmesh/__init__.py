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

``tool build`` turns the module into a WebAssembly component of the
toolmesh world with componentize-py; this package implements the world's
``handler`` export (``describe`` and ``call``) from the decorated functions.
"""

from ._errors import InvalidArguments, ToolDefinitionError, ToolError
from ._host import log, progress
from ._registry import Image, tool, tools
from . import http

__all__ = [
    "Image", "InvalidArguments", "ToolDefinitionError", "ToolError", "http", "log", "progress", "tool", "tools",
]
