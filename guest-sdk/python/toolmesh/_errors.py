"""The errors a tool raises and the one a bad tool definition raises."""


class ToolError(Exception):
    """The tool ran but could not do its job: the caller gets an
    ``isError`` result with this message."""


class InvalidArguments(ToolError):
    """The arguments do not fit what the tool takes; the message names the
    offending field."""


class ToolDefinitionError(Exception):
    """A tool that cannot be described (an unsupported type hint, a name
    used twice). Raised when the module is imported, so at build time; the
    message starts with ``file:line:``."""
