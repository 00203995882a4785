"""The ``server`` export: tools with every kind of content, and the
resources and prompts registered with ``@resource`` and ``@prompt``.
"""

import json

from componentize_py_types import Err
from wit_world import exports
# Built with wasi:http too (a tool that requests network access), the
# bindings name a toolmesh interface by its package where WASI has one of
# the same name.
try:
    from wit_world.imports import mcp_types as mcp
except ImportError:
    from wit_world.imports import toolmesh_tool_mcp_types as mcp
try:
    from wit_world.imports import types
except ImportError:
    from wit_world.imports import toolmesh_tool_types as types

from ._errors import InvalidArguments, ToolError
from ._handler import run_tool
from ._offer import Audio, Embedded, Link, Message, prompts, resources
from ._registry import Image
from ._schema import to_json


def _item(value):
    """One value as a content item."""
    if isinstance(value, Image):
        return mcp.Item_Image(types.Image(data=bytes(value.data), mime_type=value.mime_type))
    if isinstance(value, Audio):
        return mcp.Item_Audio(mcp.Audio(data=bytes(value.data), mime_type=value.mime_type))
    if isinstance(value, Embedded):
        return mcp.Item_Resource(_contents(value.uri, value.contents, value.mime_type))
    if isinstance(value, Link):
        return mcp.Item_ResourceLink(mcp.ResourceInfo(uri=value.uri, name=value.name, title=None,
                                                      description=value.description, mime_type=value.mime_type,
                                                      size=None))
    if isinstance(value, str):
        return mcp.Item_Text(value)
    return mcp.Item_Json(json.dumps(to_json(value), ensure_ascii=False, allow_nan=False))


def _contents(uri, contents, mime_type):
    body = mcp.Body_Blob(bytes(contents)) if isinstance(contents, (bytes, bytearray)) else mcp.Body_Text(str(contents))
    return mcp.ResourceContents(uri=uri, mime_type=mime_type, body=body)


def items_of(result):
    """A tool's return value as content items: a list of text, images,
    audio, resources and links is several items."""
    if result is None:
        return []
    rich = (Image, Audio, Embedded, Link)
    if isinstance(result, list) and result and all(isinstance(r, rich) or isinstance(r, str) for r in result):
        return [_item(r) for r in result]
    try:
        return [_item(result)]
    except (TypeError, ValueError) as e:
        raise Err(types.ToolError_Failed(f"the result cannot be sent as JSON: {e}")) from None


def _offer_error(e):
    if isinstance(e, (KeyError, LookupError)):
        return mcp.OfferError_NotFound(f"nothing at {e}")
    if isinstance(e, InvalidArguments):
        return mcp.OfferError_InvalidArguments(str(e))
    if isinstance(e, ToolError):
        return mcp.OfferError_Failed(str(e))
    return mcp.OfferError_Failed(f"{type(e).__name__}: {e}")


class Server(exports.Server):
    """Tools with every kind of content, resources and prompts."""

    def call(self, name, arguments):
        return items_of(run_tool(name, arguments))

    def describe_offer(self):
        fixed, templates = [], []
        for r in resources().values():
            if r.templated:
                templates.append(mcp.ResourceTemplate(uri_template=r.uri, name=r.name, title=None,
                                                      description=r.description, mime_type=r.mime_type))
            else:
                fixed.append(mcp.ResourceInfo(uri=r.uri, name=r.name, title=None, description=r.description,
                                              mime_type=r.mime_type, size=None))
        offered = [
            mcp.Prompt(name=p.name, title=None, description=p.description,
                       arguments=[mcp.PromptArgument(name=n, description=d, required=q) for n, d, q in p.arguments])
            for p in prompts().values()
        ]
        return mcp.Offer(resources=fixed, templates=templates, prompts=offered)

    def read(self, uri, template, variables):
        found = resources().get(template if template is not None else uri)
        if found is None or found.templated != (template is not None):
            raise Err(mcp.OfferError_NotFound(f"no resource `{uri}`"))
        try:
            value = found.function(**dict(variables))
        except Exception as e:
            raise Err(_offer_error(e)) from None
        if isinstance(value, Embedded):
            return [_contents(uri, value.contents, value.mime_type or found.mime_type)]
        return [_contents(uri, value, found.mime_type)]

    def get_prompt(self, name, arguments):
        found = prompts().get(name)
        if found is None:
            raise Err(mcp.OfferError_NotFound(f"no prompt `{name}`"))
        given = dict(arguments)
        missing = [n for n, _, required in found.arguments if required and n not in given]
        if missing:
            raise Err(mcp.OfferError_InvalidArguments(f"prompt `{name}` needs argument `{missing[0]}`"))
        try:
            value = found.function(**{k: v for k, v in given.items() if any(k == n for n, _, _ in found.arguments)})
        except Exception as e:
            raise Err(_offer_error(e)) from None
        messages = value if isinstance(value, list) else [value]
        out = []
        for message in messages:
            if not isinstance(message, Message):
                message = Message(message)
            role = mcp.Role.ASSISTANT if message.role == "assistant" else mcp.Role.USER
            out.append(mcp.PromptMessage(role=role, content=_item(message.content)))
        return mcp.PromptResult(description=found.description, messages=out)
