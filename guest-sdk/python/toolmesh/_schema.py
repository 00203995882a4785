"""JSON Schemas of Python type hints, and Python values of JSON.

Supported: ``str``, ``int``, ``float``, ``bool``, ``bytes`` (base64),
``None``, ``list[T]``, ``tuple[A, B]``, ``tuple[T, ...]``, ``dict[str, T]``,
``Optional[T]`` / ``T | None``, unions, ``Literal[...]``, ``Enum``
subclasses, dataclasses, ``TypedDict``, ``Annotated[T, "description"]`` and
``Any``. Anything else is refused when the tool is defined.
"""

import base64
import dataclasses
import enum
import types
import typing

from ._errors import InvalidArguments

_NONE = type(None)


class Unsupported(Exception):
    """A type hint with no JSON Schema; the message names it."""


def _is_typeddict(hint) -> bool:
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__")


def _name(hint) -> str:
    return getattr(hint, "__name__", None) or repr(hint)


def schema_of(hint, seen=()) -> dict:
    """The JSON Schema of values of type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in seen:
        raise Unsupported(f"`{_name(hint)}` refers to itself")
    if hint is typing.Any:
        return {}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is bytes:
        return {"type": "string", "contentEncoding": "base64"}
    if hint is None or hint is _NONE:
        return {"type": "null"}
    if origin is typing.Annotated:
        schema = dict(schema_of(args[0], seen))
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if origin is typing.Literal:
        values = list(args)
        schema = {"enum": values}
        kinds = {type(v) for v in values}
        if kinds == {str}:
            schema["type"] = "string"
        elif kinds <= {int} and bool not in kinds:
            schema["type"] = "integer"
        return schema
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [schema_of(a, seen) for a in args]}
    if origin in (list, typing.Sequence, set, frozenset) or hint is list:
        item = args[0] if args else typing.Any
        schema = {"type": "array", "items": schema_of(item, seen)}
        if origin in (set, frozenset):
            schema["uniqueItems"] = True
        return schema
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_of(args[0], seen)}
        return {
            "type": "array",
            "prefixItems": [schema_of(a, seen) for a in args],
            "items": False,
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is dict or hint is dict:
        key, value = args if args else (str, typing.Any)
        if key is not str:
            raise Unsupported(f"`{_name(hint)}` has keys that are not strings")
        return {"type": "object", "additionalProperties": schema_of(value, seen)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        schema = {"enum": values}
        if all(isinstance(v, str) for v in values):
            schema["type"] = "string"
        if hint.__doc__ and hint.__doc__ != enum.Enum.__doc__:
            schema["description"] = hint.__doc__.strip()
        return schema
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint, include_extras=True)
        properties, required = {}, []
        for field in dataclasses.fields(hint):
            properties[field.name] = schema_of(hints[field.name], (*seen, hint))
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                required.append(field.name)
        return _object(hint, properties, required)
    if _is_typeddict(hint):
        hints = typing.get_type_hints(hint, include_extras=True)
        properties = {name: schema_of(h, (*seen, hint)) for name, h in hints.items()}
        return _object(hint, properties, [k for k in hints if k in hint.__required_keys__])
    raise Unsupported(f"`{_name(hint)}` has no JSON Schema (use str, int, float, bool, bytes, list, dict, "
                      "tuple, Optional, Literal, an Enum, a dataclass or a TypedDict)")


def _object(hint, properties, required) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    doc = hint.__doc__ or ""
    # A dataclass without a docstring gets its signature as __doc__.
    if doc and not doc.startswith(f"{hint.__name__}("):
        schema["description"] = doc.strip()
    return schema


def _kind(value) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def from_json(hint, value, path: str):
    """The Python value of type ``hint`` that JSON ``value`` holds; raises
    InvalidArguments naming ``path`` when it does not fit."""

    def wrong(what):
        return InvalidArguments(f"`{path}`: expected {what}, got {_kind(value)}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin is typing.Annotated:
        return from_json(args[0], value, path)
    if hint is str or hint is bool:
        if type(value) is not hint:
            raise wrong("a string" if hint is str else "true or false")
        return value
    if hint is int:
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is not int:
            raise wrong("an integer")
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise wrong("a number")
        return float(value)
    if hint is bytes:
        if type(value) is not str:
            raise wrong("a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except ValueError as e:
            raise InvalidArguments(f"`{path}`: not base64: {e}") from None
    if hint is None or hint is _NONE:
        if value is not None:
            raise wrong("null")
        return None
    if origin is typing.Literal:
        if value not in args or type(value) not in {type(a) for a in args}:
            raise InvalidArguments(f"`{path}`: expected one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        errors = []
        for option in args:
            try:
                return from_json(option, value, path)
            except InvalidArguments as e:
                errors.append(str(e))
        raise InvalidArguments(errors[0] if len(errors) == 1 else f"`{path}`: fits none of its types ({errors[0]})")
    if origin in (list, typing.Sequence, set, frozenset, tuple) or hint in (list, tuple):
        if type(value) is not list:
            raise wrong("an array")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise InvalidArguments(f"`{path}`: expected an array of {len(args)} items, got {len(value)}")
            return tuple(from_json(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else typing.Any
        items = [from_json(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return {tuple: tuple, set: set, frozenset: frozenset}.get(origin, list)(items)
    if origin is dict or hint is dict:
        if type(value) is not dict:
            raise wrong("an object")
        item = args[1] if args else typing.Any
        return {k: from_json(item, v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            values = ", ".join(repr(m.value) for m in hint)
            raise InvalidArguments(f"`{path}`: expected one of {values}, got {value!r}") from None
    if (dataclasses.is_dataclass(hint) and isinstance(hint, type)) or _is_typeddict(hint):
        if type(value) is not dict:
            raise wrong("an object")
        hints = typing.get_type_hints(hint, include_extras=True)
        unknown = [k for k in value if k not in hints]
        if unknown:
            raise InvalidArguments(f"`{path}`: unknown field `{unknown[0]}`")
        fields = {k: from_json(hints[k], v, f"{path}.{k}") for k, v in value.items()}
        if _is_typeddict(hint):
            missing = [k for k in hint.__required_keys__ if k not in fields]
            if missing:
                raise InvalidArguments(f"`{path}.{missing[0]}` is missing")
            return fields
        try:
            return hint(**fields)
        except TypeError as e:
            raise InvalidArguments(f"`{path}`: {e}") from None
    raise InvalidArguments(f"`{path}`: cannot be read as `{_name(hint)}`")


def to_json(value):
    """``value`` as plain JSON data: dataclasses as objects, enums as their
    values, bytes as base64, tuples and sets as arrays."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v) for v in value]
    return value
