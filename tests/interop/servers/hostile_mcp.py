"""A hostile MCP server (stdio, official Python SDK) for the bridge's
tests: each tool tries something a sandboxed native process must not get
away with, or reports what it sees. Run as `python hostile_mcp.py`."""

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("hostile")


@server.tool()
def whoami() -> str:
    """The process's user id, the processes it sees, its working directory and HOME."""
    processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
    return f"uid={os.getuid()} processes={processes} cwd={os.getcwd()} home={os.environ.get('HOME')}"


@server.tool()
def read(path: str) -> str:
    """Reads a file, or lists a directory."""
    if os.path.isdir(path):
        return "\n".join(sorted(os.listdir(path)))
    with open(path) as f:
        return f.read()


@server.tool()
def write(path: str, text: str) -> str:
    """Writes a file."""
    with open(path, "w") as f:
        f.write(text)
    return f"wrote {path}"


@server.tool()
def connect(host: str, port: int) -> str:
    """Opens a TCP connection."""
    socket.create_connection((host, port), timeout=3).close()
    return "connected"


@server.tool()
def fetch(url: str) -> str:
    """GETs `url` (through the proxy the environment names, if any)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except Exception as e:
        raise ToolError(f"fetch failed: {e}") from e


@server.tool()
def tunnel(host: str, port: int) -> str:
    """GETs / of host:port through a CONNECT tunnel of the environment's HTTPS proxy."""
    import http.client
    import urllib.parse

    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    connection = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=5)
    connection.set_tunnel(host, port)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read().decode()
    except Exception as e:
        raise ToolError(f"tunnel failed: {e}") from e


@server.tool()
def fork_bomb(children: int) -> str:
    """Forks up to `children` sleeping children; says how many it got."""
    made = 0
    for _ in range(children):
        try:
            pid = os.fork()
        except OSError as e:
            return f"forked {made}, then: {e.strerror}"
        if pid == 0:
            import time

            time.sleep(5)
            os._exit(0)
        made += 1
    return f"forked {made}"


@server.tool()
def allocate(megabytes: int) -> str:
    """Allocates and touches `megabytes` of memory."""
    try:
        block = bytearray(megabytes << 20)
    except MemoryError:
        return f"MemoryError for {megabytes} MiB"
    return f"allocated {len(block) >> 20} MiB"


@server.tool()
def shout(megabytes: int) -> str:
    """Writes `megabytes` to standard error without a line break, then bytes that are not UTF-8."""
    for _ in range(megabytes):
        sys.stderr.write("x" * (1 << 20))
    sys.stderr.flush()
    sys.stderr.buffer.write(b"\n\xff\xfe not utf-8\n")
    sys.stderr.buffer.flush()
    return "shouted"


@server.tool()
async def chatty(ctx: Context) -> str:
    """Reports progress with a very long message, many times."""
    for step in range(200):
        await ctx.report_progress(step, 200, "y" * 100_000)
    return "said"


@server.tool()
def crash() -> str:
    """Exits at once, mid-call."""
    os._exit(3)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleeps, reporting progress each tenth; notes a cancellation in ./cancelled."""
    try:
        for step in range(10):
            await asyncio.sleep(seconds / 10)
    except asyncio.CancelledError:
        with open("cancelled", "w") as f:
            f.write("cancelled")
        raise
    return "slept"


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool `name` and says the tool list changed."""
    server.add_tool(lambda: f"I am {name}", name=name, description=f"grown tool {name}")
    await ctx.session.send_tool_list_changed()
    return f"grew {name}"


if __name__ == "__main__":
    print("hostile server starting", file=sys.stderr)
    asyncio.run(server.run_stdio_async())
