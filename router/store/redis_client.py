"""The one Redis connection of a process, built from the ``store`` section.

Everything the fleet shares (jobs, job events, limits, health, leases) talks to Redis through
the client ``connect`` returns: redis-py's asyncio client (hiredis parses replies), a plain
``Redis`` for one server or a ``RedisCluster`` for a cluster (``store.cluster``), which routes
each command by its key's slot. Callers keep every multi-key command and script inside one slot
with a hash tag (``{...}`` in the key), so both shapes run the same code.

Commands time out after ``store.timeout`` seconds: a Redis that is down or slow shows as an
error the caller can answer (503 for a create) instead of a request that hangs. A pooled
connection idle for ``HEALTH_CHECK`` seconds is pinged before its next command, so after a
Redis restart the connections opened before it are replaced quietly rather than each failing
one request.

It must not hold application data or decide anything: it connects.
"""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

from router.config.model import StoreConfig

__all__ = ["RedisClient", "connect"]

RedisClient = Redis | RedisCluster
HEALTH_CHECK = 1.0  # seconds


def connect(config: StoreConfig) -> RedisClient:
    """A client for ``config.url`` (connections open lazily, at the first command)."""
    if config.backend != "redis":
        raise ValueError(f"store.backend is {config.backend!r}, not redis")
    timeout = config.timeout
    # replies stay bytes (decode_responses off): job records are stored, not read as text
    if config.cluster:
        return RedisCluster.from_url(
            config.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=HEALTH_CHECK,
        )
    return Redis.from_url(
        config.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=HEALTH_CHECK,
    )
