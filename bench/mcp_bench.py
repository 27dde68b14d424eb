"""What one MCP call costs, both ways: the assistant as an MCP client, and as an MCP server.

    .venv/bin/python bench/mcp_bench.py [--calls 60] [--warmup 5]

Starts a private gateway and tools worker as processes (tests/fleet.py's
``running_fleet``, own Redis key prefix), the tools worker connected to
``mcp-server-time`` over stdio. Then times, one call after another:

1. ``direct``: the SDK's client in this process calling ``get_current_time``
   on its own ``mcp-server-time`` (the floor: the server and stdio alone);
2. ``via the assistant``: ``mcp.time.get_current_time`` as a ``ToolCall`` on the
   bus, run by the tools worker through its MCP link (what a voice turn pays);
3. ``time.now via the bus``: the tools worker's own clock, for reference;
4. ``/mcp``: the SDK's streamable-HTTP client calling ``time.now`` on the
   gateway with a JWT (an MCP client such as Claude Desktop), which goes over
   the bus to the tools worker.

The overhead of the client is (2) - (1); of the server, (4) - (3). Prints a
table and writes bench/results/mcp.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fleet import mint_token, running_fleet  # noqa: E402

from bench.common import summary, table, write  # noqa: E402
from voicefleet.bus import Bus  # noqa: E402
from voicefleet.messages import ToolCall, new_id  # noqa: E402
from voicefleet.settings import BusSettings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"
TIME_SERVER = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def timed(calls: int, warmup: int, one: Callable[[], Awaitable[None]]) -> list[float]:
    for _ in range(warmup):
        await one()
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await one()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def direct(calls: int, warmup: int) -> list[float]:
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=TIME_SERVER["command"], args=TIME_SERVER["args"])  # type: ignore[arg-type]
    async with Client(params) as client:

        async def one() -> None:
            result = await client.call_tool("get_current_time", {"timezone": "Asia/Tokyo"})
            assert not result.is_error

        return await timed(calls, warmup, one)


async def via_bus(bus: Bus, name: str, args: dict[str, Any], calls: int, warmup: int) -> list[float]:
    async def one() -> None:
        result = await bus.call_tool(ToolCall(session_id="bench", user="bench", name=name, args=args), 10)
        assert result is not None and result.ok, result

    return await timed(calls, warmup, one)


async def via_gateway(url: str, token: str, calls: int, warmup: int) -> list[float]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:

            async def one() -> None:
                result = await client.call_tool("time.now", {"timezone": "Asia/Tokyo"})
                assert not result.is_error, result

            return await timed(calls, warmup, one)


async def measure(port: int, prefix: str, secret: str, calls: int, warmup: int) -> dict[str, list[float]]:
    bus = Bus(BusSettings(redis_url=REDIS_URL, key_prefix=prefix))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the link connects in the background once the worker is ready
            raw = await bus.redis.hget(bus.keys.remote_tools, "time")
            if raw and json.loads(raw)["up"]:
                break
            await asyncio.sleep(0.2)
        return {
            "direct": await direct(calls, warmup),
            "via the assistant": await via_bus(bus, "mcp.time.get_current_time", {"timezone": "Asia/Tokyo"},
                                               calls, warmup),
            "time.now via the bus": await via_bus(bus, "time.now", {"timezone": "Asia/Tokyo"}, calls, warmup),
            "/mcp": await via_gateway(f"http://127.0.0.1:{port}/mcp", mint_token(secret, "bench"), calls, warmup),
        }
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=60, help="timed calls per path")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls first")
    args = parser.parse_args()
    port, prefix = free_port(), f"vfbench-{new_id()[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(VF_TOOLS_DATA_DIR=tmp, VF_TOOLS_SEARCH_DIRS="", VF_TOOLS_WEB_PROVIDER="off",
                   VF_TOOLS_MCP_SERVERS=json.dumps({"time": TIME_SERVER}))
        with running_fleet(REDIS_URL, port, prefix, Path(tmp), {"tools": "tools_worker"}, **env) as fleet:
            times = asyncio.run(measure(port, prefix, fleet.secret, args.calls, args.warmup))
    stats = {path: summary(values) for path, values in times.items()}
    overhead = {
        "client (via the assistant - direct)": {q: stats["via the assistant"][q] - stats["direct"][q]
                                                for q in ("p50", "p90")},
        "server (/mcp - time.now via the bus)": {q: stats["/mcp"][q] - stats["time.now via the bus"][q]
                                                 for q in ("p50", "p90")},
    }
    rows = [{"path": p, "p50 ms": s["p50"], "p90 ms": s["p90"], "n": s["n"]} for p, s in stats.items()]
    rows += [{"path": f"overhead: {p}", "p50 ms": o["p50"], "p90 ms": o["p90"], "n": ""} for p, o in overhead.items()]
    print(table(rows, ["path", "p50 ms", "p90 ms", "n"]))
    print(f"wrote {write('mcp', {'calls': args.calls, 'ms': stats, 'overhead_ms': overhead})}")


if __name__ == "__main__":
    main()
