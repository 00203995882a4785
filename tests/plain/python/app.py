"""The `portable` world of tests/plain/wit in Python (componentize-py)."""

import math

import wit_world
from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import values


class WitWorld(wit_world.WitWorld):
    def add(self, a: int, b: int) -> int:
        return (a + b) & 0xFFFFFFFF


class Values(exports.Values):
    def echo(self, value: values.Everything) -> values.Everything:
        return value

    def area(self, shape: values.Shape) -> float:
        if isinstance(shape, values.Shape_Circle):
            return math.pi * shape.value * shape.value
        if isinstance(shape, values.Shape_Rectangle):
            a, b = shape.value
            return abs((b.x - a.x) * (b.y - a.y))
        return 0.0

    def divide(self, dividend: int, divisor: int) -> int:
        if divisor == 0:
            raise Err(f"cannot divide {dividend} by {divisor}")
        return int(dividend / divisor)

    def greet(self, name: str, times: int | None) -> str:
        return " ".join([f"Hello, {name}!"] * (1 if times is None else times))

    def describe(self, color: values.Color, permissions: values.Permissions) -> tuple[str, int]:
        names = [flag.name.lower() for flag in values.Permissions if flag in permissions]
        return (f"{color.name.lower()} {'|'.join(names)}", len(names))

    def count_bytes(self, blob: bytes) -> int:
        return len(blob)

    def check(self, positive: int) -> None:
        if positive <= 0:
            raise Err(f"{positive} is not positive")

    def crash(self, message: str) -> None:
        raise RuntimeError(message)


class Bench(exports.Bench):
    def echo_text(self, text: str) -> str:
        return text

    def greet(self, name: str) -> str:
        return f"Hello, {name}!"
