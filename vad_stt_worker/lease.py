"""Who owns a session's audio: a Redis lease (SET NX PX) refreshed by its owner.

Only the holder may refresh or release it (checked atomically in Lua), so a
worker that stalled past the TTL cannot take back a session another worker
has claimed since.
"""

from __future__ import annotations

import redis.asyncio as aioredis

_REFRESH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class Lease:
    """One session's ownership lease, as seen by one worker process."""

    def __init__(self, redis: aioredis.Redis, key: str, owner: str, ttl_ms: int) -> None:
        self.redis, self.key, self.owner, self.ttl_ms = redis, key, owner, ttl_ms
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def refresh(self) -> bool:
        """Extend the lease; False means it is no longer ours."""
        return bool(await self._refresh(keys=[self.key], args=[self.owner, self.ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.owner])
