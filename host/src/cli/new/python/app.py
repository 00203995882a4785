"""{{name}}: a toolmesh tool in Python.

Each function with @tool is one MCP tool: its type hints are its input
schema, its docstring the description. Build it with `tool build`.
"""

from collections import Counter
from dataclasses import dataclass
import re

from toolmesh import ToolError, tool


@dataclass
class TextStats:
    """What a text is made of."""

    words: int
    sentences: int
    top_words: list[str]


@tool(read_only=True, idempotent=True)
def text_stats(text: str, top: int = 3) -> TextStats:
    """Counts the words and sentences of a text and finds its most frequent words.

    Args:
        text: The text to read.
        top: How many of the most frequent words to return.
    """
    if top < 0:
        raise ToolError("`top` cannot be negative")
    words = re.findall(r"[\w']+", text.lower())
    sentences = len([s for s in re.split(r"[.!?]+", text) if s.strip()])
    return TextStats(
        words=len(words),
        sentences=sentences,
        top_words=[word for word, _ in Counter(words).most_common(top)],
    )
