"""Shared fixtures: configs built from plain dicts, the proxy on a real loopback port, SDK clients.

Nothing here fakes our own code. Upstreams are simulators serving real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from providers.simulator import Simulator, SimulatorStats
from router import keys
from router.app import create_app
from router.config import Config, parse_config

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


def build_config(tmp_path: Path, providers: list[dict[str, Any]], **sections: Any) -> Config:
    raw: dict[str, Any] = {
        "server": {"port": 0, "poll_after_ms": 50, **sections.pop("server", {})},
        "store": {"path": str(tmp_path / "jobs.db")},
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
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

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

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        await self.runner.cleanup()


async def start_proxy(config: Config, clock: Callable[[], float] = time.time) -> RunningProxy:
    app = create_app(config, clock=clock)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return RunningProxy(app=app, runner=runner, url=f"http://{host}:{port}")


ProxyFactory = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
async def proxy_factory(tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    """Start proxies from provider dicts; every one is stopped after the test."""
    started: list[RunningProxy] = []

    async def make(providers: list[dict[str, Any]], **sections: Any) -> RunningProxy:
        proxy = await start_proxy(build_config(tmp_path, providers, **sections))
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        await proxy.stop()


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    """Two healthy simulated providers."""
    return await proxy_factory([sim_provider("sim-a", price=0.08), sim_provider("sim-b")])


async def wait_for(predicate: Callable[[], Awaitable[bool]], *, within: float = 10.0) -> None:
    """Poll an async condition at a short fixed pace until it holds; fail after ``within``."""
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.02)
