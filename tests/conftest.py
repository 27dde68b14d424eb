"""Shared fixtures: a real Redis under a key prefix of each test's own."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from fleet import delete_prefix
from protocol_fleet import protocol_fleet  # noqa: F401 (session fixture: one fleet for the OpenAI and Wyoming tests)

from voicefleet.bus import Bus
from voicefleet.messages import new_id
from voicefleet.settings import BusSettings

REDIS_URL = os.environ.get("VF_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.fixture(scope="session")
def redis_available() -> None:
    if _redis_up():
        return
    reason = f"Redis is not reachable at {REDIS_URL}: start it with `redis-server --daemonize yes`"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def key_prefix(redis_available: None) -> Iterator[str]:
    """A prefix of this test's own; every key under it is deleted afterwards."""
    prefix = f"vftest-{new_id()[:8]}"
    yield prefix
    delete_prefix(REDIS_URL, prefix)


@pytest.fixture
def bus_settings(key_prefix: str) -> BusSettings:
    return BusSettings(redis_url=REDIS_URL, key_prefix=key_prefix, health_ttl_s=2.0)


@pytest.fixture
async def bus(bus_settings: BusSettings) -> AsyncIterator[Bus]:
    b = Bus(bus_settings)
    yield b
    await b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fleet_env(key_prefix: str) -> dict[str, str]:
    """Environment for service processes started by a test."""
    env = dict(os.environ)
    env.update(
        VF_REDIS_URL=REDIS_URL,
        VF_KEY_PREFIX=key_prefix,
        VF_HEALTH_TTL_S="2",
        VF_GATEWAY_JWT_SECRET=f"test-secret-{key_prefix}-0123456789abcdef0123456789",
        PYTHONUNBUFFERED="1",
    )
    return env
