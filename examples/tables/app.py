"""tables: CSV data for agents — a summary of each column, rows filtered and
sorted, and the table as Markdown, HTML or JSON.

A toolmesh tool written with the Python SDK: each ``@tool`` function is one
MCP tool, its type hints its JSON Schema and its docstring its description.
``tool build`` makes it a component (scripts/build-sdk-examples.sh builds it
for ``tool serve``).
"""

import csv
import html
import io
import json
import re
import statistics
from dataclasses import dataclass
from typing import Literal, Optional

from toolmesh import InvalidArguments, tool

# Rows read from one CSV text at most, and cells shown per column summary.
MAX_ROWS = 100_000
TOP_VALUES = 5


@dataclass
class Column:
    """What one column holds."""

    name: str
    kind: Literal["number", "boolean", "text", "empty"]
    filled: int
    missing: int
    distinct: int
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    mean: Optional[float] = None
    median: Optional[float] = None
    stdev: Optional[float] = None
    top: Optional[list[str]] = None


@dataclass
class Summary:
    """The shape of a table and a summary of each column."""

    rows: int
    columns: list[Column]


@dataclass
class Condition:
    """A test a row must pass."""

    column: str
    op: Literal["=", "!=", "<", "<=", ">", ">=", "contains", "startswith", "empty", "filled"]
    value: str = ""


@dataclass
class Rows:
    """Rows of a table, as objects keyed by column."""

    columns: list[str]
    rows: list[dict]
    matched: int


def _read(text: str, delimiter: str) -> tuple[list[str], list[list[str]]]:
    if len(delimiter) != 1:
        raise InvalidArguments("`delimiter` must be one character")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidArguments("`csv` is empty: its first row names the columns") from None
    except csv.Error as e:
        raise InvalidArguments(f"`csv` line 1: {e}") from None
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        raise InvalidArguments("`csv`: two columns share a name")
    rows = []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(rows) == MAX_ROWS:
                raise InvalidArguments(f"`csv` has more than {MAX_ROWS} rows")
            rows.append((row + [""] * len(header))[: len(header)])
    except csv.Error as e:
        raise InvalidArguments(f"`csv` line {reader.line_num}: {e}") from None
    return header, rows


# A number written with thousands separators: 1,234,567.8
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
# Finite values whose sums cannot overflow.
_LARGEST = 1e300


def _number(cell: str) -> Optional[float]:
    cell = cell.strip()
    if _GROUPED.match(cell):
        cell = cell.replace(",", "")
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if abs(value) <= _LARGEST else None


def _column(name: str, cells: list[str]) -> Column:
    filled = [c.strip() for c in cells if c.strip()]
    column = Column(name=name, kind="empty", filled=len(filled), missing=len(cells) - len(filled),
                    distinct=len(set(filled)))
    if not filled:
        return column
    numbers = [_number(c) for c in filled]
    if all(n is not None for n in numbers):
        column.kind = "number"
        column.minimum, column.maximum = min(numbers), max(numbers)
        column.mean = round(statistics.fmean(numbers), 6)
        column.median = statistics.median(numbers)
        column.stdev = round(statistics.stdev(numbers), 6) if len(numbers) > 1 else 0.0
    elif {c.lower() for c in filled} <= {"true", "false", "yes", "no"}:
        column.kind = "boolean"
    else:
        column.kind = "text"
    counts: dict[str, int] = {}
    for cell in filled:
        counts[cell] = counts.get(cell, 0) + 1
    column.top = [value for value, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_VALUES]]
    return column


@tool(read_only=True, idempotent=True)
def summarize(csv: str, delimiter: str = ",") -> Summary:
    """Summarises CSV data: the number of rows, and for each column its kind
    (number, boolean, text), how many cells are filled and distinct, its
    most frequent values, and for numbers the minimum, maximum, mean, median
    and standard deviation.

    Args:
        csv: The CSV text; its first row names the columns.
        delimiter: The character between fields.
    """
    header, rows = _read(csv, delimiter)
    return Summary(rows=len(rows), columns=[_column(name, [row[i] for row in rows]) for i, name in enumerate(header)])


def _passes(cell: str, condition: Condition) -> bool:
    op, value = condition.op, condition.value
    if op == "empty":
        return not cell.strip()
    if op == "filled":
        return bool(cell.strip())
    if op == "contains":
        return value.lower() in cell.lower()
    if op == "startswith":
        return cell.lower().startswith(value.lower())
    left, right = _number(cell), _number(value)
    if left is None or right is None:
        left, right = cell, value
    return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
            ">": left > right, ">=": left >= right}[op]


@tool(read_only=True, idempotent=True)
def query(
    csv: str,
    where: Optional[list[Condition]] = None,
    sort_by: Optional[str] = None,
    descending: bool = False,
    columns: Optional[list[str]] = None,
    limit: int = 100,
    delimiter: str = ",",
) -> Rows:
    """Selects rows of CSV data: those passing every condition, sorted by a
    column (numbers as numbers), with the columns asked for, at most `limit`
    of them. Comparisons are numeric when both sides are numbers; `contains`
    and `startswith` ignore case.

    Args:
        csv: The CSV text; its first row names the columns.
        where: Conditions every row returned passes.
        sort_by: The column to sort by.
        descending: Largest first.
        columns: The columns to return, in this order (default: all).
        limit: The most rows to return.
        delimiter: The character between fields.
    """
    header, rows = _read(csv, delimiter)
    index = {name: i for i, name in enumerate(header)}
    for name in [c.column for c in where or []] + ([sort_by] if sort_by else []) + (columns or []):
        if name not in index:
            raise InvalidArguments(f"no column named {name!r}; the columns are {', '.join(header)}")
    if limit < 0:
        raise InvalidArguments("`limit` cannot be negative")
    kept = [row for row in rows if all(_passes(row[index[c.column]], c) for c in where or [])]
    if sort_by:
        # Numbers as numbers, then text, then empty cells; the last two
        # stay last whichever the direction.
        column = index[sort_by]
        numbers = [row for row in kept if _number(row[column]) is not None]
        text = [row for row in kept if _number(row[column]) is None and row[column].strip()]
        empty = [row for row in kept if _number(row[column]) is None and not row[column].strip()]
        numbers.sort(key=lambda row: _number(row[column]), reverse=descending)
        text.sort(key=lambda row: row[column], reverse=descending)
        kept = numbers + text + empty
    shown = columns or header
    return Rows(columns=shown, rows=[{name: row[index[name]] for name in shown} for row in kept[:limit]],
                matched=len(kept))


@tool(read_only=True, idempotent=True)
def convert(csv: str, to: Literal["markdown", "html", "json"] = "markdown", delimiter: str = ",") -> str:
    """Converts CSV data to a Markdown table, an HTML table, or JSON (a list
    of objects keyed by column).

    Args:
        csv: The CSV text; its first row names the columns.
        to: The format to write.
        delimiter: The character between fields.
    """
    header, rows = _read(csv, delimiter)
    if to == "json":
        return json.dumps([dict(zip(header, row)) for row in rows], ensure_ascii=False)
    if to == "html":
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows)
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"

    def cell(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
