"""What the host offers a tool: log lines and progress reports. The host
interfaces are imported when first used, so a tool's module also imports
in plain CPython (for its own unit tests)."""


def log(message: str, level: str = "info") -> None:
    """Records a log line with the call (the host caps how much a call logs)."""
    from wit_world.imports import log as host

    levels = {"trace": host.Level.TRACE, "debug": host.Level.DEBUG, "info": host.Level.INFO,
              "warn": host.Level.WARN, "warning": host.Level.WARN, "error": host.Level.ERROR}
    host.log(levels.get(level, host.Level.INFO), str(message))


def progress(done: float, total: float | None = None, message: str | None = None) -> None:
    """Tells the caller that ``done`` units of ``total`` are finished."""
    from wit_world.imports import progress as host

    host.report(float(done), None if total is None else float(total), message)
