"""A Redis primary, its replica and a Sentinel on loopback ports of their own, for failover tests and benches."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import redis

MASTER = "voicefleet"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sentinel_command(conf: Path) -> list[str] | None:
    """How to start a Sentinel here: Debian's ``redis-sentinel``, else ``redis-server --sentinel``; None: neither."""
    if shutil.which("redis-sentinel"):
        return ["redis-sentinel", str(conf)]
    if shutil.which("redis-server"):
        return ["redis-server", str(conf), "--sentinel"]
    return None


@dataclass
class RedisTrio:
    """Ports and processes of the primary, the replica and the Sentinel."""

    primary: int
    replica: int
    sentinel: int
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def sentinels(self) -> str:
        """The value of ``VF_REDIS_SENTINELS``."""
        return f"127.0.0.1:{self.sentinel}"

    def primary_port(self) -> int:
        """The port of the primary the Sentinel names now."""
        client = redis.Redis(port=self.sentinel, socket_timeout=1)
        try:
            _, port = client.sentinel_get_master_addr_by_name(MASTER)  # type: ignore[no-untyped-call]
            return int(port)
        finally:
            client.close()

    def wait_until_replicated(self) -> None:
        """The replica is in sync and the Sentinel knows it (it asks the primary every 10 s): a failover can happen."""
        replica, sentinel = redis.Redis(port=self.replica), redis.Redis(port=self.sentinel)
        try:
            _wait(lambda: replica.info("replication").get("master_link_status") == "up", "the replica did not sync")
            _wait(lambda: sentinel.sentinel_slaves(MASTER), "the Sentinel did not find the replica")  # type: ignore[no-untyped-call]
        finally:
            replica.close()
            sentinel.close()

    def kill_primary(self) -> None:
        proc = self.procs["primary"]
        proc.kill()
        proc.wait(5)

    def wait_for_promotion(self, timeout: float = 30.0) -> float:
        """Wait until the Sentinel names the replica as primary and it says so; the time it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            try:
                if self.primary_port() == self.replica:
                    role = redis.Redis(port=self.replica, socket_timeout=1).execute_command("ROLE")[0]
                    if role == b"master":
                        return time.monotonic() - started
            except redis.RedisError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"the replica was not promoted in {timeout} s")


def fleet_env(trio: RedisTrio, folder: Path) -> dict[str, str]:
    """Settings of a fleet that reaches Redis through ``trio``'s Sentinel, its tools' data under ``folder``.

    A tool's writes wait for the replica (``VF_REDIS_WAIT_REPLICAS``). Notes and timers are understood by the
    intent layer, before any model: no LLM is loaded (a server nobody listens on stands in for it), so what is
    measured is Redis, and quick.
    """
    return dict(
        VF_REDIS_SENTINELS=trio.sentinels, VF_REDIS_SENTINEL_MASTER=MASTER, VF_REDIS_WAIT_REPLICAS="1",
        VF_TOOLS_DATA_DIR=str(folder / "tools-data"), VF_TOOLS_SEARCH_DIRS="", VF_TOOLS_WEB_PROVIDER="off",
        VF_LLM_BACKENDS="openai", VF_LLM_OPENAI_BASE_URL=f"http://127.0.0.1:{_free_port()}/v1",
    )


def _wait(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        time.sleep(0.05)
    raise TimeoutError(what)


@contextmanager
def redis_with_sentinel(folder: Path, down_after_ms: int = 1000) -> Iterator[RedisTrio]:
    """Start the three on free loopback ports (never 6379); stop them afterwards."""
    trio = RedisTrio(_free_port(), _free_port(), _free_port(), {})
    logs: list[IO[bytes]] = []
    conf = folder / "sentinel.conf"
    conf.write_text(
        f"port {trio.sentinel}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {trio.primary} 1\n"
        f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
        f"sentinel failover-timeout {MASTER} 4000\n"  # failovers in a row (bench) must not wait 2x it
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    command = sentinel_command(conf)
    assert command is not None, "no redis-server here"
    # No disk, and no wait for more replicas before the first (diskless) sync.
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"]
    try:
        for name, port, extra in (("primary", trio.primary, []),
                                  ("replica", trio.replica, ["--replicaof", "127.0.0.1", str(trio.primary)])):
            (folder / name).mkdir()
            trio.procs[name] = subprocess.Popen(
                ["redis-server", "--port", str(port), "--dir", str(folder / name), *common, *extra],
                stdout=_log(logs, folder / f"{name}.log"), stderr=subprocess.STDOUT,
            )
        trio.procs["sentinel"] = subprocess.Popen(
            command, stdout=_log(logs, folder / "sentinel.log"), stderr=subprocess.STDOUT
        )
        primary = redis.Redis(port=trio.primary)
        _wait(primary.ping, "the primary did not start")
        primary.close()
        yield trio
    finally:
        for proc in trio.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        for log in logs:
            log.close()


def _log(logs: list[IO[bytes]], path: Path) -> IO[bytes]:
    logs.append(open(path, "wb"))  # closed when the processes are stopped
    return logs[-1]
