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
import operator
import os
import posix
import sys
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

import runfiles
import toolcalls

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

# Bytes of stdout (and of stderr) kept per call, as they are encoded in the
# result; the rest is counted. With a result of at most MAX_RESULT bytes and
# an error of at most 2 × 6 × MAX_TEXT, a report stays under 1 MiB (the
# node's default output limit) whatever characters the code prints.
MAX_STREAM = 200_000
MAX_RESULT = 200_000
# Characters of a result's repr, an exception's message or its traceback.
MAX_TEXT = 20_000
# Frames shown from the top of a deep traceback, and from its bottom.
TRACE_EDGE = 20
SOURCE = "<code>"

DESCRIPTION = f"""Runs Python 3.14 code in a fresh, isolated sandbox and returns what it printed \
and the value of its last expression.

How to return a value: end the code with an expression (e.g. `result` or `sum(xs)`); its value \
comes back as JSON when it is JSON-serialisable, else as its repr. Everything printed to stdout and \
stderr comes back too (each cut at about {MAX_STREAM // 1000} kB). An exception is a normal result: \
`error` holds its type, message and traceback.

Inputs: `code`; optional `input` text that `input()` and `sys.stdin` read; optional `vars`, a JSON \
object whose keys become global variables; optional `files`, {{name: text or {{"base64": ...}}}}, which \
the code reads with `files.read(name)` / `files.bytes(name)` (`files.list()` names them); optional \
`session`, a name: runs with the same session share their variables, imports, functions and files until \
it is idle for 10 minutes.

Returning files: `files.write("chart.svg", svg_text)` (or bytes, with an optional mime type); what the code \
wrote comes back with the result, images (PNG, JPEG, GIF, WebP, SVG) as images.

Calling other tools of this server, as you and with your rights: \
`tools.call("examples.text.slugify", {{"text": "Hi"}})` or `tools.examples.text.slugify(text="Hi")` returns the \
tool's structured result (or its text); a failure raises ToolError (`e.kind`, `e.message`). \
`tools.gather([("examples.text.slugify", {{"text": "a"}}), ...])` runs calls at once and returns their values in \
order. `tools.search("words")` lists matching tools with TypeScript-style signatures; `tools.describe(name)` gives \
one tool's schemas. Calls nest at most 3 deep and one run makes at most a few hundred; they share its time limit.

Available: the Python language and builtins, and these standard modules: {", ".join(MODULES)} \
(sqlite3 in memory only). Nothing else can be imported: no pip packages (numpy, pandas, requests \
are not there), no subprocess, ctypes, socket access or threads.

Limits: no files, no network, no environment variables; without a session every call starts \
from a clean interpreter; the node caps time (10 s by default), memory \
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
        "files": {
            "type": "object",
            "description": "Files for the code, by name: text, or {\"base64\": ..., \"mime_type\": ...} for bytes. "
            "The code reads them with files.read(name) or files.bytes(name).",
            "additionalProperties": {
                "oneOf": [
                    {"type": "string"},
                    {
                        "type": "object",
                        "properties": {"base64": {"type": "string"}, "mime_type": {"type": "string"}},
                        "required": ["base64"],
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "session": {
            "type": "string",
            "description": "Keep state between runs: runs that name the same session share their variables, "
            "imports and functions, until it is idle for a while.",
        },
    },
    "required": ["code"],
    "additionalProperties": False,
    "x-toolmesh-session": "session",
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
            "description": "The status given to sys.exit() or os._exit(), if the code called one.",
        },
        "truncated": {"type": "boolean", "description": "Whether stdout or stderr was cut."},
        "files": {
            "type": "array",
            "description": "The files the code wrote with files.write (images also come back as image content).",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "mime_type": {"type": "string"},
                    "size": {"type": "integer"},
                    "text": {"type": "string"},
                    "base64": {"type": "string"},
                    "image": {"type": "boolean"},
                },
                "required": ["name", "mime_type", "size"],
            },
        },
    },
    "required": ["stdout", "stderr", "result", "result_type", "error", "exit_code", "truncated"],
}


class Stream(io.TextIOBase):
    """A text stream that keeps what is written up to `MAX_STREAM` encoded
    bytes, and counts the characters past it. (The caps inside a run are
    best effort, since the code shares this interpreter; the node's output
    limit is the hard bound.)"""

    def __init__(self):
        self.parts = []
        self.used = 0
        self.dropped = 0
        self.sealed = False

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        text = str.__str__(text)
        count = len(text)
        if self.sealed:  # written after os._exit: the process is gone
            return count
        room = MAX_STREAM - self.used
        if self.dropped or room <= 0:
            self.dropped += count
            return count
        # Every character takes at least a byte: more than `room` never fits.
        head = clean(text[:room])
        cost = encoded_size(head)
        if count <= room and cost <= room:
            self.parts.append(head)
            self.used += cost
            return count
        low, high = 0, len(head)
        while low < high:
            mid = (low + high + 1) // 2
            if encoded_size(head[:mid]) <= room:
                low = mid
            else:
                high = mid - 1
        self.parts.append(head[:low])
        self.used = MAX_STREAM
        self.dropped += max(count - low, 1)
        return count

    def text(self):
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[… {self.dropped} more characters dropped]"
        return text


def clean(text):
    """`text` with lone surrogates (which UTF-8 cannot hold) written as
    `\\udXXX` escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encoded_size(text):
    """Bytes `text` (clean) takes as a JSON string in the result, quotes aside."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def clip(text):
    """`text`, clean and cut to `MAX_TEXT` characters."""
    text = clean(text)
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n[… {len(text) - MAX_TEXT} more characters dropped]"


def text_of(value):
    """`str(value)` as a plain string, whatever `__str__` does."""
    try:
        text = str(value)
        return str.__str__(text) if isinstance(text, str) else "<not a string>"
    except BaseException:  # a hostile __str__
        return "<the value could not be formatted>"


def describe_error(error):
    """The type, message and traceback of `error`, without this module's frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SOURCE:
        tb = tb.tb_next
    try:
        summary = traceback.TracebackException(type(error), error, tb, max_group_width=8, max_group_depth=4)
        frames = summary.stack.format()
        if len(frames) > 2 * TRACE_EDGE:
            hidden = len(frames) - 2 * TRACE_EDGE
            lines = ["Traceback (most recent call last):\n", *frames[:TRACE_EDGE]]
            lines.append(f"  [… {hidden} more frames …]\n")
            lines.extend(frames[-TRACE_EDGE:])
            lines.extend(summary.format_exception_only())
            text = "".join(lines)
        else:
            text = "".join(summary.format())
    except BaseException:  # a hostile exception breaks the formatting
        text = ""
    return {"type": text_of(type(error).__name__), "message": clip(text_of(error)), "traceback": clip(text)}


def as_result(value):
    """The last expression's value as (result, result_type): plain JSON data
    (encoded once, so the value cannot change in between), else its repr."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
        if len(text) <= MAX_RESULT and len(text.encode("utf-8", "replace")) <= MAX_RESULT:
            return json.loads(text.encode("utf-8", "replace").decode("utf-8")), "json"
    except BaseException:  # not JSON (sets, objects, cycles, NaN, huge ints) or a hostile encoder
        pass
    try:
        return clip(text_of(repr(value))), "repr"
    except BaseException:
        return "<the value could not be shown>", "repr"


def exit_status(code):
    """The status `sys.exit(code)` gives a process, as Python defines it."""
    if code is None:
        return 0
    if isinstance(code, int):
        code = int.__index__(code)
        return code if -(2**31) <= code < 2**31 else 1
    return 1


class ProcessExit(BaseException):
    """`os._exit(status)` in a run: the process would have ended there."""


# Statuses given to os._exit in this run (a fresh instance per call), and
# the run's output streams.
_exits = []
_streams = []


def _exit(status):
    """`os._exit` for the code: there is no process of its own to end, so
    the run ends as with `sys.exit(status)`, and stays ended even if the
    code catches the exception: the first status counts, and nothing
    printed after it is kept."""
    _exits.append(operator.index(status))  # a TypeError for non-integers, as os._exit gives
    for stream in _streams:
        stream.sealed = True
    raise ProcessExit(status)


os._exit = posix._exit = _exit


# The globals and files of this instance's session, between its calls (the
# host keeps the instance for the session's next call).
_session_scope = {}
_session_files = runfiles.Files()


def run(code, stdin_text, variables, session=None, files=None):
    """Runs `code` as `__main__` (in the session's globals if it names one)
    with `files` (a runfiles.Files); returns the call's structured result."""
    out, err = Stream(), Stream()
    _streams[:] = [out, err]
    _exits.clear()  # a session's earlier run may have exited
    report = {"result": None, "result_type": "none", "error": None, "exit_code": None}
    scope = _session_scope if session is not None else {}
    scope.update({"__name__": "__main__", "__builtins__": builtins, "tools": toolcalls.TOOLS,
                  "ToolError": toolcalls.ToolError, "files": files if files is not None else runfiles.Files()})
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
    except ProcessExit:
        pass  # reported below, from _exits
    except SystemExit as exit:
        report["exit_code"] = exit_status(exit.code)
        if exit.code is not None and not isinstance(exit.code, int):
            Stream.write(err, text_of(exit.code) + "\n")
    except BaseException as error:  # the code's own failure is the call's result
        if isinstance(error, MemoryError):
            # Free what the code holds before describing its failure.
            scope.clear()
            traceback.clear_frames(error.__traceback__)
        report["error"] = describe_error(error)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    if _exits:
        # The process ended at the first os._exit, whatever ran after it.
        report.update(result=None, result_type="none", error=None, exit_code=exit_status(_exits[0]))
    report["stdout"], report["stderr"] = Stream.text(out), Stream.text(err)
    report["truncated"] = bool(out.dropped or err.dropped)
    return report


# What a run gets when it broke this module's own reporting.
BROKEN = json.dumps({
    "stdout": "", "stderr": "", "result": None, "result_type": "none",
    "error": {"type": "InternalError", "message": "the code broke run_python's own reporting", "traceback": ""},
    "exit_code": None, "truncated": False,
})


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
    session = args.get("session")
    if session is not None and not isinstance(session, str):
        raise Err(types.ToolError_InvalidArguments("`session` must be a string"))
    files = _session_files if session is not None else runfiles.Files()
    problem = files.receive(args.get("files", {}))
    if problem:
        raise Err(types.ToolError_InvalidArguments(problem))
    if not isinstance(code, str):
        raise Err(types.ToolError_InvalidArguments("`code` must be a string"))
    if not isinstance(stdin_text, str):
        raise Err(types.ToolError_InvalidArguments("`input` must be a string"))
    if not isinstance(variables, dict):
        raise Err(types.ToolError_InvalidArguments("`vars` must be an object"))
    for key in variables:
        if not key.isidentifier() or key.startswith("__"):
            raise Err(types.ToolError_InvalidArguments(f"`vars` key {key!r} is not a usable variable name"))
    return code, stdin_text, variables, session, files


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
        code, stdin_text, variables, session, files = arguments_of(arguments)
        images = []
        try:
            report = run(code, stdin_text, variables, session, files)
            written, images = files.take_written()
            if written:
                report["files"] = written
            text = json.dumps(report, ensure_ascii=False)
        except BaseException:  # the code broke what runs after it
            text, images = BROKEN, []
        return [types.Content_Json(text)] + [types.Content_Image(types.Image(data, mime)) for mime, data in images]
