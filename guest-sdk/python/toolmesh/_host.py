"""What the host offers a tool: log lines, progress reports and resource
updates.

Outside a component (a tool's own unit tests in plain CPython) there is no
host: log lines go to stderr and progress reports nowhere.
"""

import sys

try:
    # Imported when the module is, so at build time: only modules imported
    # then exist inside the component.
    from wit_world.imports import log as _log
    from wit_world.imports import progress as _progress
    from wit_world.imports import resource_updates as _updates
except ImportError:
    _log = _progress = _updates = None


def log(message: str, level: str = "info") -> None:
    """Records a log line with the call (the host caps how much a call logs)."""
    if _log is None:
        print(f"{level}: {message}", file=sys.stderr)
        return
    levels = {"trace": _log.Level.TRACE, "debug": _log.Level.DEBUG, "info": _log.Level.INFO,
              "warn": _log.Level.WARN, "warning": _log.Level.WARN, "error": _log.Level.ERROR}
    _log.log(levels.get(level, _log.Level.INFO), str(message))


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Tells the caller that ``done`` units of ``total`` are finished."""
    if _progress is not None:
        _progress.report(float(done), None if total is None else float(total), message)


def resource_updated(uri: str) -> None:
    """Tells the clients subscribed to this package's resource ``uri`` (as
    the package offers it: an ``@resource``'s URI, or one its template
    matches) that it changed, so they read it again. A call may report 32
    URIs; others, and URIs the package does not offer, are dropped."""
    if _updates is not None:
        _updates.updated(str(uri))
