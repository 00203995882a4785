"""Content beyond text, JSON and images (``Audio``, ``Embedded``,
``Link``), and what a package offers besides tools: resources (fixed URIs,
or URI templates) and prompts, registered with ``@resource`` and
``@prompt``::

    from toolmesh import prompt, resource

    @resource("notes://readme", mime_type="text/markdown")
    def readme() -> str:
        \"\"\"How to use these notes.\"\"\"
        return "# Notes"

    @resource("notes://pages/{slug}")
    def page(slug: str) -> str:
        \"\"\"One page of the notes.\"\"\"
        return PAGES[slug]          # a KeyError reads as "no such resource"

    @prompt
    def review(markdown: str) -> str:
        \"\"\"Asks for a review of a document.\"\"\"
        return f"Please review:\\n\\n{markdown}"
"""

import dataclasses
import inspect
import re
import typing

from ._errors import ToolDefinitionError

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Audio:
    """An audio result: encoded bytes and their media type."""

    data: bytes
    mime_type: str = "audio/wav"


@dataclasses.dataclass(frozen=True)
class Embedded:
    """A resource's contents, embedded in a result or a prompt message."""

    uri: str
    contents: str | bytes
    mime_type: str | None = None


@dataclasses.dataclass(frozen=True)
class Link:
    """A link to a resource the client may read."""

    uri: str
    name: str
    description: str | None = None
    mime_type: str | None = None


@dataclasses.dataclass(frozen=True)
class Message:
    """One message of a prompt: who speaks (``user`` or ``assistant``) and what."""

    content: typing.Any
    role: str = "user"


@dataclasses.dataclass
class Resource:
    """One registered resource, or family of them under a URI template."""

    uri: str
    name: str
    function: typing.Callable
    description: str | None
    mime_type: str | None
    templated: bool


@dataclasses.dataclass
class Prompt:
    """One registered prompt."""

    name: str
    function: typing.Callable
    description: str | None
    arguments: list  # (name, description, required)


_RESOURCES: dict[str, Resource] = {}
_PROMPTS: dict[str, Prompt] = {}


def resources() -> dict[str, Resource]:
    """Every resource registered so far, by URI (or template)."""
    return _RESOURCES


def prompts() -> dict[str, Prompt]:
    """Every prompt registered so far, by name."""
    return _PROMPTS


def _first_paragraph(function) -> str | None:
    doc = inspect.getdoc(function) or ""
    return doc.split("\n\n")[0].strip() or None


def resource(uri: str, *, name: str | None = None, description: str | None = None, mime_type: str | None = None):
    """Registers the decorated function as the resource at ``uri`` (absolute,
    ``scheme:…``); with ``{variables}`` in ``uri``, as a family of them whose
    variables are the function's arguments."""
    if ":" not in uri:
        raise ToolDefinitionError(f"resource URI {uri!r} is not absolute (scheme:…)")

    def register(function):
        templated = "{" in uri
        _RESOURCES[uri] = Resource(uri, name or function.__name__, function,
                                   description or _first_paragraph(function), mime_type, templated)
        return function

    return register


def prompt(function=None, *, name: str | None = None, description: str | None = None):
    """Registers the decorated function as a prompt; its ``str`` parameters
    are the prompt's arguments (required unless they have a default). It
    returns the user's message (text), or a list of ``Message``."""

    def register(function):
        prompt_name = name or function.__name__
        if not _NAME.match(prompt_name):
            raise ToolDefinitionError(f"prompt name {prompt_name!r} is not 1-64 characters of [A-Za-z0-9_.-]")
        arguments = [
            (p.name, None, p.default is inspect.Parameter.empty)
            for p in inspect.signature(function).parameters.values()
        ]
        _PROMPTS[prompt_name] = Prompt(prompt_name, function, description or _first_paragraph(function), arguments)
        return function

    return register(function) if function is not None else register
