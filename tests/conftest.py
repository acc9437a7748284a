"""Shared fixtures: configs built from plain dicts, the proxy on a real loopback port, SDK clients.

Nothing here fakes our own code. Upstreams are simulators serving real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from providers.simulator.server import Simulator, SimulatorStats
from providers.simulator.settings import SimulationSettings
from router import appkeys as keys
from router.app import create_app
from router.config.load import parse_config
from router.config.model import Config
from router.records.job import Job
from router.runtime.connections import CappedSite, connection_limit
from router.store.sqlite import SqliteJobStore
from tests.contract.seaweed import SeaweedS3, start_seaweed
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream
from tests.log_capture import CapturedLogs, captured_logs, process_logging_undone
from tests.redis_rig import RedisCluster, RedisServer, start_cluster, start_server
from tests.relay_client import RelayClient

ALICE = "sk-test-alice"
BOB = "sk-test-bob"
FAST_RENDER = {"render_seconds": 0.3}


def sim_provider(name: str, *, price: float = 0.1, **simulate: Any) -> dict[str, Any]:
    """A ``kind: simulator`` provider entry that renders in a fraction of a second."""
    return {
        "name": name,
        "kind": "simulator",
        "models": {
            "sora-2": {"price_per_second": price},
            "sora-2-pro": {"price_per_second": price * 3},
        },
        "poll_interval": 0.05,
        "timeout": 5,
        "simulate": {**FAST_RENDER, **simulate},
    }


def upstream_provider(
    name: str, kind: str, sim: Simulator, *, models: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A provider of ``kind`` (openai, azure or relay) pointed at a stand-alone simulator."""
    base_url = f"{sim.base_url}/v1" if kind == "openai" else sim.base_url
    return {
        "name": name,
        "kind": kind,
        "base_url": base_url,
        "api_key": sim.api_key,
        "models": models or {"sora-2": {"price_per_second": 0.1}},
        "poll_interval": 0.05,
        "timeout": 5,
        **extra,
    }


def build_config(tmp_path: Path, providers: list[dict[str, Any]], **sections: Any) -> Config:
    raw: dict[str, Any] = {
        "server": {"port": 0, "poll_after_ms": 50, **sections.pop("server", {})},
        "store": {"path": str(tmp_path / "jobs.db"), **sections.pop("store", {})},
        "keys": sections.pop(
            "keys", [{"name": "alice", "key": ALICE}, {"name": "bob", "key": BOB}]
        ),
        "providers": providers,
        **sections,
    }
    return parse_config(raw, env={})


@dataclass
class RunningProxy:
    app: web.Application
    runner: web.AppRunner
    url: str
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)
    relay_clients: list[RelayClient] = field(default_factory=list)
    stopped: bool = False

    def simulator(self, provider: str) -> Simulator:
        entry = self.app[keys.POOL].get(provider)
        assert entry is not None and entry.simulator is not None
        return entry.simulator

    def stats(self, provider: str) -> SimulatorStats:
        return self.simulator(provider).stats

    def client(self, key: str = ALICE) -> openai.AsyncOpenAI:
        """An SDK client for this proxy; closed when the proxy stops."""
        client = openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=key, max_retries=0, timeout=10
        )
        self.clients.append(client)
        return client

    def relay(self, key: str = ALICE) -> RelayClient:
        """A relay-dialect client for this proxy; closed when the proxy stops."""
        client = RelayClient(self.url, key)
        self.relay_clients.append(client)
        return client

    async def stop(self) -> None:
        """Close its clients and the app; once (a test may stop an instance before the end)."""
        if self.stopped:
            return
        self.stopped = True
        for client in self.clients:
            await client.close()
        for relay in self.relay_clients:
            await relay.close()
        await self.runner.cleanup()


def listening_socket() -> socket.socket:
    """A socket bound to a free loopback port, so a config can name the port before start."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


async def start_proxy(
    config: Config,
    clock: Callable[[], float] = time.time,
    sock: socket.socket | None = None,
    *,
    ready: bool = True,
    log_access: bool = False,
) -> RunningProxy:
    """Serve ``config``; with ``ready``, return once ``/readyz`` would say so."""
    app = create_app(config, clock=clock, log_access=log_access)
    # drained at stop for at most server.shutdown_timeout, as ``sora-proxy serve`` drains
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=config.server.shutdown_timeout)
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()  # the contexts that did start are torn down
        if sock is not None:
            sock.close()
        raise
    # served as ``sora-proxy serve`` serves: through the connection cap
    site = CappedSite(
        runner,
        sock or listening_socket(),
        limit=connection_limit(config.server.max_connections),
        metrics=app[keys.METRICS],
    )
    await site.start()
    if ready:
        await app[keys.HEALTH_CHECKER].first_round.wait()  # what /readyz waits for
    host, port = runner.addresses[0][:2]
    return RunningProxy(app=app, runner=runner, url=f"http://{host}:{port}")


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


SimulatorFactory = Callable[..., Awaitable[Simulator]]


@pytest.fixture
async def simulators() -> AsyncIterator[SimulatorFactory]:
    """Start stand-alone simulated upstreams (keyword arguments are ``simulate`` knobs).

    They outlive every proxy of the test (``proxy_factory`` depends on this fixture), so no
    poller ever talks to an upstream that is already gone.
    """
    started: list[Simulator] = []

    async def make(
        *,
        api_key: str = "sk-upstream",
        deployments: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        **simulate: Any,
    ) -> Simulator:
        settings = SimulationSettings(**{**FAST_RENDER, **simulate})
        sim = Simulator(settings, api_key=api_key, deployments=deployments, clock=clock)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One real S3-compatible server (SeaweedFS) for the whole run; tests use their own bucket."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _process_logging() -> Iterator[None]:
    """Whatever a test sets up as the process's logging is gone after it (``router.cli.main``
    called in-process configures the root logger, at INFO, as the command does)."""
    with process_logging_undone():
        yield


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    """The log lines written during the test (``tests.log_capture``)."""
    with captured_logs() as captured:
        yield captured


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedFactory]:
    """Start ``ScriptedUpstream`` servers (outside providers faked over HTTP); stopped after."""
    started: list[ScriptedUpstream] = []

    async def make(host: str = "127.0.0.1") -> ScriptedUpstream:
        upstream = ScriptedUpstream(host=host)
        await upstream.start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        await upstream.stop()


@pytest.fixture
async def proxy_factory(
    tmp_path: Path, simulators: SimulatorFactory, scripted: ScriptedFactory
) -> AsyncIterator[ProxyFactory]:
    """Start proxies from provider dicts; every one is stopped after the test, before the
    simulators and scripted upstreams of the test (this fixture depends on both): an upstream
    stopped under a running proxy gets its requests during its own shutdown.

    Each listens on a port chosen before its config is built, so ``server.public_url`` (the
    base of signed links) is the address it really answers on. ``clock`` is injected.
    """
    started: list[RunningProxy] = []

    async def make(
        providers: list[dict[str, Any]],
        *,
        clock: Callable[[], float] = time.time,
        ready: bool = True,
        log_access: bool = False,
        **sections: Any,
    ) -> RunningProxy:
        sock = listening_socket()
        public_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        sections["server"] = {"public_url": public_url, **sections.get("server", {})}
        config = build_config(tmp_path, providers, **sections)
        proxy = await start_proxy(config, clock, sock, ready=ready, log_access=log_access)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    """Two healthy simulated providers."""
    return await proxy_factory([sim_provider("sim-a", price=0.08), sim_provider("sim-b")])


def local_store(app: web.Application) -> SqliteJobStore:
    """The app's job store, which a test on the sqlite backend looks into directly."""
    store = app[keys.STORE]
    assert isinstance(store, SqliteJobStore)
    return store


def stored_job(proxy: RunningProxy, job_id: str) -> Job:
    """The job as the proxy's store holds it (it must exist)."""
    found = local_store(proxy.app).get(job_id)
    assert found is not None
    return found


async def read_job(proxy: RunningProxy, job_id: str) -> Job:
    """The job as the proxy's store holds it now, on either backend (it must exist)."""
    found = await proxy.app[keys.STORE].read(job_id)
    assert found is not None
    return found


async def created_in_batches(proxy: RunningProxy, count: int, batch: int) -> list[str]:
    """The ids of ``count`` renders ("take 0", "take 1", ...) created through ``proxy``,
    ``batch`` at a time: many creates soon, without all of them open at once."""
    client = proxy.client()
    ids: list[str] = []
    for start in range(0, count, batch):
        made = await asyncio.gather(
            *(
                client.videos.create(model="sora-2", prompt=f"take {n}")
                for n in range(start, min(start + batch, count))
            )
        )
        ids += [video.id for video in made]
    return ids


async def finished_job(proxy: RunningProxy, job_id: str) -> Job:
    """``job_id`` once it has settled, completed or failed."""

    async def done() -> bool:
        return (await read_job(proxy, job_id)).state.finished

    await wait_for(done)
    return await read_job(proxy, job_id)


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll an async condition at a short fixed pace until it holds; fail after ``within``."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port for this test (``.url``, ``.kill()``,
    ``.start()`` again on the same port and files); stopped by PID after it."""
    server = start_server(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A three-master Redis Cluster on loopback, shared by the session (building one takes
    about a second); tests take ``redis_cluster_url`` to get it empty."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The URL of one node of the session's cluster, every master flushed first."""
    redis_cluster.flush()
    return redis_cluster.url
