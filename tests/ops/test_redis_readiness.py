"""``/readyz`` follows the shared store's Redis: false while it is down, true again by itself."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.conftest import ProxyFactory, RunningProxy, sim_provider, wait_for
from tests.redis_rig import RedisServer


async def readiness(proxy: RunningProxy) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/readyz") as reply:
        return reply.status, await reply.json()


async def test_readyz_is_false_while_redis_is_down_and_recovers_by_itself(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    proxy = await proxy_factory(
        [sim_provider("sim")],
        server={"link_secret": "one-secret-for-the-fleet"},
        store={"backend": "redis", "url": redis_server.url, "timeout": 0.5},
    )
    assert await readiness(proxy) == (200, {"ready": True})

    redis_server.kill()

    async def not_ready() -> bool:
        return await readiness(proxy) == (503, {"ready": False, "waiting_for": ["redis"]})

    await wait_for(not_ready)
    await asyncio.to_thread(redis_server.start)

    async def ready() -> bool:
        return await readiness(proxy) == (200, {"ready": True})

    await wait_for(ready)
