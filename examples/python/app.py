"""`run_python`: runs an agent's Python code in a fresh sandbox per call.

Built into a component with componentize-py (scripts/build-components.sh).
Everything this module imports is initialised at build time and snapshotted,
so a call starts with the interpreter and the curated standard library
already loaded. Only modules imported here exist at run time.

A call gets no files, no network, no environment and no subprocesses: the
node grants the component clocks and random numbers, nothing else. Its
time, memory and output are capped by the node's limits.
"""

import ast
import builtins
import importlib
import io
import json
import linecache
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

# The standard library a call can import, loaded at build time.
MODULES = [
    "abc", "array", "base64", "binascii", "bisect", "calendar", "cmath", "collections",
    "collections.abc", "colorsys", "contextlib", "copy", "csv", "dataclasses", "datetime",
    "decimal", "difflib", "enum", "fnmatch", "fractions", "functools", "graphlib", "hashlib",
    "heapq", "hmac", "html", "html.parser", "io", "ipaddress", "itertools", "json", "keyword",
    "math", "numbers", "operator", "pprint", "random", "re", "secrets", "shlex", "sqlite3",
    "statistics", "string", "struct", "textwrap", "time", "tomllib", "typing", "unicodedata",
    "urllib.parse", "uuid", "xml.etree.ElementTree", "zlib",
]
for _name in MODULES:
    importlib.import_module(_name)

# Characters of stdout (and of stderr) kept per call; the rest is counted.
MAX_STREAM = 100_000
# Characters of a result's repr, or of a traceback, kept per call.
MAX_TEXT = 20_000
# Frames shown from the top of a deep traceback, and from its bottom.
TRACE_EDGE = 20
SOURCE = "<code>"

DESCRIPTION = f"""Runs Python 3.14 code in a fresh, isolated sandbox and returns what it printed \
and the value of its last expression.

How to return a value: end the code with an expression (e.g. `result` or `sum(xs)`); its value \
comes back as JSON when it is JSON-serialisable, else as its repr. Everything printed to stdout and \
stderr comes back too (each cut at {MAX_STREAM} characters). An exception is a normal result: \
`error` holds its type, message and traceback.

Inputs: `code`; optional `input` text that `input()` and `sys.stdin` read; optional `vars`, a JSON \
object whose keys become global variables.

Available: the Python language and builtins, and these standard modules: {", ".join(MODULES)} \
(sqlite3 in memory only). Nothing else can be imported: no pip packages (numpy, pandas, requests \
are not there), no subprocess, ctypes, socket access or threads.

Limits: no files, no network, no environment variables; every call starts from a clean \
interpreter (nothing persists between calls); the node caps time (10 s by default), memory \
(256 MiB by default) and output. Running out of time ends the call with an error; running out of \
memory raises MemoryError."""

INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "Python source to run as a module."},
        "input": {"type": "string", "description": "Text that input() and sys.stdin read."},
        "vars": {
            "type": "object",
            "description": "Global variables to define before the code runs (JSON values).",
        },
    },
    "required": ["code"],
    "additionalProperties": False,
}

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "stdout": {"type": "string", "description": "What the code printed."},
        "stderr": {"type": "string", "description": "What the code wrote to sys.stderr."},
        "result": {"description": "The last expression's value (JSON, or its repr as a string)."},
        "result_type": {
            "type": "string",
            "enum": ["json", "repr", "none"],
            "description": "json: `result` is the value; repr: `result` is its repr; none: no value.",
        },
        "error": {
            "type": ["object", "null"],
            "description": "The exception the code raised, if any.",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "traceback": {"type": "string"},
            },
            "required": ["type", "message", "traceback"],
        },
        "exit_code": {
            "type": ["integer", "null"],
            "description": "The status given to sys.exit(), if the code called it.",
        },
        "truncated": {"type": "boolean", "description": "Whether stdout or stderr was cut."},
    },
    "required": ["stdout", "stderr", "result", "result_type", "error", "exit_code", "truncated"],
}


class Stream(io.TextIOBase):
    """A text stream that keeps the first `MAX_STREAM` characters written."""

    def __init__(self):
        self.parts = []
        self.kept = 0
        self.dropped = 0

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = MAX_STREAM - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, len(text))
        self.dropped += max(0, len(text) - max(room, 0))
        return len(text)

    def text(self):
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[… {self.dropped} more characters dropped]"
        return text


def clip(text):
    """`text`, cut to `MAX_TEXT` characters."""
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n[… {len(text) - MAX_TEXT} more characters dropped]"


def describe_error(error):
    """The type, message and traceback of `error`, without this module's frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SOURCE:
        tb = tb.tb_next
    summary = traceback.TracebackException(type(error), error, tb, max_group_width=8, max_group_depth=4)
    frames = summary.stack
    if len(frames) > 2 * TRACE_EDGE:
        hidden = len(frames) - 2 * TRACE_EDGE
        summary.stack = traceback.StackSummary.from_list(list(frames[:TRACE_EDGE]) + list(frames[-TRACE_EDGE:]))
        note = f"[… {hidden} frames hidden]\n"
    else:
        note = ""
    text = "".join(summary.format())
    if note:
        text = note + text
    try:
        message = str(error)
    except Exception:
        message = "<the exception's message could not be formatted>"
    return {"type": type(error).__name__, "message": clip(message), "traceback": clip(text)}


def as_result(value):
    """The last expression's value as (result, result_type)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError, OverflowError):
        return clip(repr(value)), "repr"
    if len(text) > MAX_TEXT * 10:
        return clip(repr(value)), "repr"
    return value, "json"


def run(code, stdin_text, variables):
    """Runs `code` as `__main__`; returns the call's structured result."""
    out, err = Stream(), Stream()
    report = {"result": None, "result_type": "none", "error": None, "exit_code": None}
    scope = {"__name__": "__main__", "__builtins__": builtins}
    scope.update(variables)
    linecache.cache[SOURCE] = (len(code), None, code.splitlines(True), SOURCE)
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(stdin_text), out, err
    try:
        tree = ast.parse(code, SOURCE)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, SOURCE, "exec"), scope)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), SOURCE, "eval"), scope)
            if value is not None:
                report["result"], report["result_type"] = as_result(value)
    except SystemExit as exit:
        status = exit.code
        report["exit_code"] = status if isinstance(status, int) else (0 if status is None else 1)
        if status is not None and not isinstance(status, int):
            print(status, file=err)
    except BaseException as error:  # the code's own failure is the call's result
        report["error"] = describe_error(error)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    report["stdout"], report["stderr"] = out.text(), err.text()
    report["truncated"] = bool(out.dropped or err.dropped)
    return report


def arguments_of(text):
    """The checked arguments of a call: (code, input, vars)."""
    try:
        args = json.loads(text)
    except ValueError as e:
        raise Err(types.ToolError_InvalidArguments(f"arguments are not JSON: {e}"))
    if not isinstance(args, dict):
        raise Err(types.ToolError_InvalidArguments("arguments must be an object"))
    unknown = sorted(set(args) - set(INPUT_SCHEMA["properties"]))
    if unknown:
        raise Err(types.ToolError_InvalidArguments(f"unknown argument: {unknown[0]}"))
    code, stdin_text, variables = args.get("code"), args.get("input", ""), args.get("vars", {})
    if not isinstance(code, str):
        raise Err(types.ToolError_InvalidArguments("`code` must be a string"))
    if not isinstance(stdin_text, str):
        raise Err(types.ToolError_InvalidArguments("`input` must be a string"))
    if not isinstance(variables, dict):
        raise Err(types.ToolError_InvalidArguments("`vars` must be an object"))
    for key in variables:
        if not key.isidentifier() or key.startswith("__"):
            raise Err(types.ToolError_InvalidArguments(f"`vars` key {key!r} is not a usable variable name"))
    return code, stdin_text, variables


class Handler(exports.Handler):
    """The component's export: one tool, `run_python`."""

    def describe(self):
        return [
            types.ToolDescriptor(
                name="run_python",
                description=DESCRIPTION,
                input_schema=json.dumps(INPUT_SCHEMA),
                output_schema=json.dumps(OUTPUT_SCHEMA),
                annotations=types.Annotations(
                    title="Run Python", read_only=True, destructive=False, idempotent=True, open_world=False
                ),
            )
        ]

    def call(self, name, arguments):
        if name != "run_python":
            raise Err(types.ToolError_InvalidArguments(f"unknown tool: {name}"))
        code, stdin_text, variables = arguments_of(arguments)
        report = run(code, stdin_text, variables)
        return [types.Content_Json(json.dumps(report))]
