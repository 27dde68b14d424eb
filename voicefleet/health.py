"""``vf-health SERVICE``: is this machine's SERVICE process alive and ready? For probes (Kubernetes, compose).

Every service process refreshes a health key with a TTL (``keys.health``),
named after its host and PID. The probe runs beside the process (in the same
pod or container, whose host name the process put in its key) and reads that
key: it needs no port of its own, and it sees exactly what the rest of the fleet
sees. Exit status 0: fine; 1: not (the reason on stderr).

* readiness (the default): a key of this host exists, says ``ready``, and the
  process is not draining after SIGTERM;
* ``--liveness``: a key of this host exists. When Redis itself is unreachable
  the probe passes: restarting every worker would not bring Redis back, and
  each one reconnects by itself.

A process has no key while it loads its models: give it a startup probe with
room for that (``startupProbe`` in Kubernetes, ``start_period`` in compose).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys

from .bus import REDIS_DOWN, Bus
from .settings import BusSettings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vf-health",
        description="Exit 0 when this host's SERVICE process refreshes its health key in Redis (ready, not "
        "draining), 1 otherwise. Reads VF_REDIS_URL / VF_REDIS_SENTINELS / VF_KEY_PREFIX like the services.",
    )
    p.add_argument("service", help="gateway, stt, llm, tts or tools")
    p.add_argument("--liveness", action="store_true",
                   help="only check that the process beats (pass when Redis itself is unreachable)")
    p.add_argument("--any-host", action="store_true", help="any process of SERVICE in the fleet, not only this host's")
    p.add_argument("--timeout", type=float, default=3.0, help="give up after this many seconds (default 3)")
    return p


async def check(settings: BusSettings, service: str, liveness: bool, any_host: bool) -> tuple[bool, str]:
    """(healthy, reason) for the probe."""
    bus = Bus(settings)
    pattern = bus.keys.health(service, "*" if any_host else f"{service}-{socket.gethostname()}-*")
    try:
        keys = [key async for key in bus.redis.scan_iter(match=pattern, count=500)]
        statuses = [json.loads(raw) for raw in await bus.redis.mget(keys) if raw] if keys else []
    except REDIS_DOWN as exc:
        return liveness, f"Redis unreachable at {bus.where}: {exc}"
    finally:
        await bus.close()
    if not statuses:
        return False, f"no health key matches {pattern}: the process is down or still loading"
    if liveness:
        return True, f"{len(statuses)} process(es) beating"
    ready = [s for s in statuses if s.get("ready") and not s.get("draining")]
    if not ready:
        return False, f"{len(statuses)} process(es), none ready (draining or loading)"
    return True, f"{len(ready)} process(es) ready"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = BusSettings()

    async def bounded() -> tuple[bool, str]:
        try:
            async with asyncio.timeout(args.timeout):
                return await check(settings, args.service, args.liveness, args.any_host)
        except TimeoutError:
            return args.liveness, f"no answer from Redis in {args.timeout} s"

    healthy, reason = asyncio.run(bounded())
    print(f"{args.service}: {reason}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
