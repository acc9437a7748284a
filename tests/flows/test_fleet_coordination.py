"""Issue 17, the coordination half over real instances: three proxies (in this process, each
its own app on its own loopback port) on one real Redis share key and provider limits, health
(429 cooldowns, drains) and admin reloads. Upstreams are stand-alone simulators all three talk
to; rate windows run on one injected clock, so a minute passes when the test says so.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from aiohttp import web

from providers.simulator.server import Simulator
from router import appkeys as keys
from router.app import create_app
from router.config.load import load_config
from router.limits.fleet import FleetLimits
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    upstream_provider,
    wait_for,
)
from tests.redis_rig import RedisServer

SLOW = {"render_seconds": 3600}  # renders that stay in flight for the whole test
LINK_SECRET = "fleet-link-secret-0123456789abcdef"
ADMIN = "admin-secret-for-the-fleet"


def on_backend(backend: str, redis_url: str) -> dict[str, Any]:
    """Config sections of a proxy on the job-store ``backend`` ("sqlite", or "redis" on
    ``redis_url`` with the link secret a fleet needs)."""
    store: dict[str, Any] = {"backend": backend}
    if backend == "redis":
        store["url"] = redis_url
    return {"store": store, "server": {"link_secret": LINK_SECRET}}


async def fleet(
    proxy_factory: ProxyFactory,
    redis_server: RedisServer,
    providers: list[dict[str, Any]],
    *,
    size: int = 3,
    **sections: Any,
) -> list[RunningProxy]:
    """``size`` instances of one config on one Redis."""
    sections.setdefault("store", {})
    sections["store"] = {"backend": "redis", "url": redis_server.url, **sections["store"]}
    server = {"link_secret": LINK_SECRET, "admin_key": ADMIN, **sections.pop("server", {})}
    return [await proxy_factory(providers, server=server, **sections) for _ in range(size)]


async def one_upstream_fleet(
    proxy_factory: ProxyFactory,
    redis_server: RedisServer,
    simulators: SimulatorFactory,
    **sections: Any,
) -> tuple[Simulator, list[RunningProxy]]:
    """Three instances with one provider, "a", on a simulator whose renders never finish."""
    sim = await simulators(**SLOW)
    providers = [upstream_provider("a", "openai", sim)]
    return sim, await fleet(proxy_factory, redis_server, providers, **sections)


def alice(**limits: object) -> list[dict[str, object]]:
    return [{"name": "alice", "key": ALICE, **limits}]


async def post_create(proxy: RunningProxy, session: aiohttp.ClientSession) -> int:
    response = await session.post(
        f"{proxy.url}/v1/videos",
        json={"model": "sora-2", "prompt": "a cat", "seconds": "4"},
        headers={"Authorization": f"Bearer {ALICE}"},
    )
    await response.read()
    return response.status


async def test_every_instance_runs_on_the_fleets_limits(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    _, proxies = await one_upstream_fleet(proxy_factory, redis_server, simulators)
    assert all(isinstance(p.app[keys.LIMITS], FleetLimits) for p in proxies)


async def test_a_key_with_rpm_3_gets_exactly_3_creates_a_minute_across_three_instances(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    sim = await simulators(clock=clock, **SLOW)
    proxies = await fleet(
        proxy_factory,
        redis_server,
        [upstream_provider("a", "openai", sim)],
        clock=clock,
        keys=alice(rpm=3),
    )
    for proxy in proxies:
        await proxy.client().videos.create(model="sora-2", prompt="a cat")
    clock.advance(20)
    for proxy in proxies:
        with pytest.raises(openai.RateLimitError) as caught:
            await proxy.client().videos.create(model="sora-2", prompt="a cat")
        assert caught.value.response.headers["Retry-After"] == "40"
    assert sim.stats.creates_received == 3
    clock.advance(41)
    await proxies[1].client().videos.create(model="sora-2", prompt="a cat")
    assert sim.stats.creates_received == 4


async def test_twenty_concurrent_creates_on_three_instances_commit_exactly_the_budget(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    # $0.10/s x 4 s = $0.40 a render: two fit in $1.00.
    sim, proxies = await one_upstream_fleet(
        proxy_factory, redis_server, simulators, keys=alice(daily_budget_usd=1.0)
    )
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(post_create(proxies[i % 3], session) for i in range(20)))
    assert sorted(statuses) == [200] * 2 + [429] * 18
    assert sim.stats.creates_received == 2


async def test_max_concurrent_holds_across_instances(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim, proxies = await one_upstream_fleet(
        proxy_factory, redis_server, simulators, keys=alice(max_concurrent=2)
    )
    await proxies[0].client().videos.create(model="sora-2", prompt="one")
    await proxies[1].client().videos.create(model="sora-2", prompt="two")
    with pytest.raises(openai.RateLimitError):
        await proxies[2].client().videos.create(model="sora-2", prompt="three")
    assert sim.stats.creates_received == 2


async def test_a_provider_with_rpm_3_never_answers_429_to_the_fleet(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    clock = ManualClock(time.time())
    capped = await simulators(clock=clock, creates_per_minute=3, **SLOW)
    other = await simulators(clock=clock, **SLOW)
    proxies = await fleet(
        proxy_factory,
        redis_server,
        [
            upstream_provider("capped", "openai", capped, rpm=3),
            upstream_provider(
                "other", "openai", other, models={"sora-2": {"price_per_second": 0.5}}
            ),
        ],
        clock=clock,
        routing={"strategy": "cheapest"},
    )
    for index in range(6):
        await proxies[index % 3].client().videos.create(model="sora-2", prompt="a cat")
    assert (capped.stats.creates_received, capped.stats.creates_accepted) == (3, 3)
    assert other.stats.creates_received == 3
    clock.advance(61)
    for proxy in proxies:
        await proxy.client().videos.create(model="sora-2", prompt="a cat")
    assert (capped.stats.creates_received, capped.stats.creates_accepted) == (6, 6)


async def test_a_create_waiting_for_room_wakes_when_another_instance_frees_it(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=1.5)
    a, b, _ = await fleet(
        proxy_factory,
        redis_server,
        [upstream_provider("a", "openai", sim, max_concurrent=1)],
        routing={"admission_wait": 20},
    )
    first = await a.client().videos.create(model="sora-2", prompt="one")
    second = await b.client().videos.create_and_poll(model="sora-2", prompt="two")
    assert second.status == "completed"
    first = await a.client().videos.retrieve(first.id)
    assert first.status == "completed" and first.completed_at is not None
    # One render at a time across the fleet: the second was placed once the first finished.
    assert second.created_at >= first.completed_at
    assert sim.stats.creates_received == 2


async def test_a_429_seen_by_one_instance_cools_the_provider_for_all(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    limited = await simulators(rate_limit_rate=1.0, retry_after=600, **SLOW)
    spare = await simulators(**SLOW)
    a, b, c = await fleet(
        proxy_factory,
        redis_server,
        [
            upstream_provider("limited", "openai", limited),
            upstream_provider(
                "spare", "openai", spare, models={"sora-2": {"price_per_second": 0.5}}
            ),
        ],
        routing={"strategy": "cheapest"},
    )
    await a.client().videos.create(model="sora-2", prompt="a cat")
    assert limited.stats.creates_received == 1

    async def everyone_cools() -> bool:
        return all(p.app[keys.HEALTH].cooling("limited") for p in (b, c))

    await wait_for(everyone_cools)
    await b.client().videos.create(model="sora-2", prompt="a cat")
    await c.client().videos.create(model="sora-2", prompt="a cat")
    assert limited.stats.creates_received == 1
    assert spare.stats.creates_received == 3


async def test_a_drain_through_one_instance_reaches_every_instance(
    redis_server: RedisServer, proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    cheap = await simulators(**SLOW)
    dear = await simulators(**SLOW)
    proxies = await fleet(
        proxy_factory,
        redis_server,
        [
            upstream_provider("cheap", "openai", cheap),
            upstream_provider("dear", "openai", dear, models={"sora-2": {"price_per_second": 1}}),
        ],
        routing={"strategy": "cheapest"},
    )
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{proxies[0].url}/admin/providers/cheap/drain",
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert answer.status == 200

    async def everyone_drained() -> bool:
        return all(p.app[keys.SELECTOR].drained("cheap") for p in proxies)

    await wait_for(everyone_drained)
    for proxy in proxies:
        await proxy.client().videos.create(model="sora-2", prompt="a cat")
    assert (cheap.stats.creates_received, dear.stats.creates_received) == (0, 3)


async def test_an_admin_reload_through_one_instance_reloads_every_instance(
    tmp_path: Path, redis_server: RedisServer, simulators: SimulatorFactory
) -> None:
    sim = await simulators(**SLOW)
    doc: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "admin_key": ADMIN, "link_secret": LINK_SECRET},
        "store": {"backend": "redis", "url": redis_server.url, "path": str(tmp_path / "j.db")},
        "keys": [{"name": "alice", "key": ALICE}],
        "providers": [upstream_provider("a", "openai", sim)],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    runners: list[web.AppRunner] = []
    try:
        apps: list[web.Application] = []
        for _ in range(2):
            app = create_app(load_config(path), config_path=path)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
            apps.append(app)
        doc["keys"].append({"name": "bob", "key": BOB})
        path.write_text(yaml.safe_dump(doc))
        host, port = runners[0].addresses[0][:2]
        async with aiohttp.ClientSession() as session:
            answer = await session.post(
                f"http://{host}:{port}/admin/reload", headers={"Authorization": f"Bearer {ADMIN}"}
            )
            assert answer.status == 200

        async def both_reloaded() -> bool:
            return all(len(app[keys.CONFIG].current.keys) == 2 for app in apps)

        await wait_for(both_reloaded)
    finally:
        for runner in runners:
            await runner.cleanup()
