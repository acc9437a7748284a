"""What the contract suites here run against, built fresh for each test.

``backend`` parametrises a suite over the in-process implementation, one Redis server and a
three-master Redis Cluster (real servers from ``tests/redis_rig.py``); ``redis_config`` is the
store config that reaches the backend's Redis. ``fleet`` gives the coordination suites
(counters, health board, leases) client connections as separate instances would make them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from router.config.model import StoreConfig
from router.events.base import JobEvents
from router.events.local import LocalJobEvents
from router.events.redis import RedisJobEvents
from router.fleet.bus import Bus, RedisBus
from router.store.base import JobStore
from router.store.redis import RedisJobStore
from router.store.redis_client import RedisClient, connect
from router.store.sqlite import SqliteJobStore
from tests.redis_rig import RedisServer

BACKENDS = ("local", "redis", "cluster")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_config(backend: str, request: pytest.FixtureRequest) -> StoreConfig | None:
    """A ``store`` section naming the backend's (empty) Redis; None for the local backend."""
    if backend == "local":
        return None
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return StoreConfig(backend="redis", url=server.url, timeout=5.0)
    url: str = request.getfixturevalue("redis_cluster_url")
    return StoreConfig(backend="redis", url=url, cluster=True, timeout=5.0)


@dataclass
class Backing:
    """Stores over one backing (a file, a Redis), as the processes of a fleet would have."""

    path: Path
    redis: StoreConfig | None
    events: JobEvents | None = None
    clients: list[RedisClient] = field(default_factory=list)
    sqlite: list[SqliteJobStore] = field(default_factory=list)
    readers: list[RedisJobEvents] = field(default_factory=list)

    async def peer(self) -> JobStore:
        """Another process's store over the same backing (SQLite: one process, the same store)."""
        if self.redis is None and self.sqlite:
            return self.sqlite[-1]
        return await self.reopen()

    async def reopen(self) -> JobStore:
        """A new store over the backing; for SQLite, the previous one is closed first."""
        if self.redis is None:
            for old in self.sqlite:
                await old.close()
            local = LocalJobEvents()
            self.events = local
            store = SqliteJobStore(self.path, on_change=local.deliver)
            await store.open()
            self.sqlite.append(store)
            return store
        self.clients.append(connect(self.redis))
        if self.events is None:
            reader = RedisJobEvents(connect(self.redis), block=0.2)
            await reader.start()
            self.readers.append(reader)
            self.events = reader
        return RedisJobStore(self.clients[-1])

    @contextlib.asynccontextmanager
    async def refusing_writes(self) -> AsyncIterator[None]:
        """The backing refuses every write meanwhile, reads still work: SQLite's connection
        turns query-only (SQLITE_READONLY, as a disk remounted read-only answers), Redis gets
        ``maxmemory`` of one byte (every write is OOM, on every master of a cluster)."""
        if self.redis is None:
            store = self.sqlite[-1]
            await store._call(_query_only(True))  # the writer thread's own connection
            try:
                yield
            finally:
                await store._call(_query_only(False))
            return
        admin = connect(self.redis)
        try:
            await _configure(admin, "maxmemory", 1)
            yield
        finally:
            await _configure(admin, "maxmemory", 0)
            await admin.aclose()

    async def close(self) -> None:
        for store in self.sqlite:
            await store.close()
        for reader in self.readers:
            await reader.close()
            await reader._client.aclose()
        for client in self.clients:
            await client.aclose()


async def _configure(client: RedisClient, name: str, value: int) -> None:
    """``CONFIG SET`` on the server, or on every node of a cluster (its default is one)."""
    if isinstance(client, RedisCluster):
        await client.config_set(name, value, target_nodes=RedisCluster.ALL_NODES)
    else:
        await client.config_set(name, value)


def _query_only(on: bool) -> Callable[[sqlite3.Connection], None]:
    def switch(conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA query_only = {int(on)}")

    return switch


@pytest.fixture
async def backing(tmp_path: Path, redis_config: StoreConfig | None) -> AsyncIterator[Backing]:
    backing = Backing(tmp_path / "jobs.db", redis_config)
    yield backing
    await backing.close()


@dataclass
class Fleet:
    """Instances' connections to one backend; ``kind`` is local, redis or cluster."""

    kind: str
    url: str | None
    clients: list[Redis | RedisCluster] = field(default_factory=list)
    buses: list[Bus] = field(default_factory=list)

    def client(self) -> Redis | RedisCluster:
        """A new connection, as a new instance would make."""
        assert self.url is not None, "the local backend has no Redis"
        client: Redis | RedisCluster
        if self.kind == "cluster":
            client = RedisCluster.from_url(self.url)
        else:
            client = Redis.from_url(self.url)
        self.clients.append(client)
        return client

    def bus(self, client: Redis | RedisCluster | None = None) -> Bus:
        """A new instance's bus (the local backend has none: one process needs none)."""
        bus = RedisBus(client if client is not None else self.client())
        self.buses.append(bus)
        return bus

    async def start(self) -> None:
        """Connect every client (as an instance does at start-up) and start the buses."""
        for client in self.clients:
            await client.ping()
        for bus in self.buses:
            await bus.start()

    async def close(self) -> None:
        for bus in self.buses:
            await bus.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def fleet(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Fleet]:
    """Connections to an empty backend as a fleet's instances make them (a fresh server, or the
    session's cluster flushed); the coordination suites (counters, board, leases) take this."""
    kind = backend
    url: str | None = None
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    elif kind == "cluster":
        url = request.getfixturevalue("redis_cluster_url")
    found = Fleet(kind, url)
    try:
        yield found
    finally:
        await found.close()
