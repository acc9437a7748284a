"""Issue 21, the fleet's cost per request: what a download of a stored video costs Redis.

A client downloads a finished job after polling it, so the instance holds the job's view
(``router.jobs.views``) and the copy is served from the asset store: no Redis round trip is
needed, and none is made. bench.fleet still counted 0.4-0.8 per download on the redis backend:
the health board's reports of the creates measured before, one round trip per create, had
queued faster than they went out and drained while the downloads ran. Counted here on a real
Redis (``INFO``), after a burst of creates as in the bench.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import aiohttp

from router.config.model import StoreConfig
from router.store.redis_client import RedisClient, connect
from tests.assets.helpers import copied
from tests.conftest import ALICE, ProxyFactory, SimulatorFactory, finished_job, upstream_provider
from tests.flows.test_fleet_coordination import on_backend
from tests.redis_rig import RedisServer

BURST = 64  # creates at once, as bench.fleet's 32 connections and more
DOWNLOADS = 100


async def _counters(client: RedisClient) -> tuple[int, int]:
    """Round trips Redis has served, and the poll plan's looks among them (its background: one
    ``ZRANGEBYSCORE`` per provider a tick, whatever the clients do); one round trip itself."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.info("stats")
        pipe.info("commandstats")
        stats, commands = cast(list[dict[str, Any]], await pipe.execute())
    looks = commands.get("cmdstat_zrangebyscore", {"calls": 0})["calls"]
    return int(stats["total_reads_processed"]), int(looks)


async def test_a_download_from_the_store_costs_redis_nothing_after_a_burst_of_creates(
    redis_server: RedisServer,
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    tmp_path: Path,
) -> None:
    done = await simulators(video_bytes=50_000)
    rendering = await simulators(render_seconds=3600)  # the burst's renders: no reads, no copies
    proxy = await proxy_factory(
        [
            upstream_provider("done", "openai", done),
            upstream_provider(
                "rendering",
                "openai",
                rendering,
                models={"sora-2-pro": {"price_per_second": 0.3}},
                poll_interval=3600,
            ),
        ],
        **on_backend("redis", redis_server.url),
        assets={"path": str(tmp_path / "assets")},
    )
    client = proxy.client()
    video = await client.videos.create(model="sora-2", prompt="a harbour at noon")
    await finished_job(proxy, video.id)
    await copied(proxy, video.id)
    assert (await client.videos.retrieve(video.id)).status == "completed"  # as a client polls
    await asyncio.gather(
        *(client.videos.create(model="sora-2-pro", prompt=f"take {n}") for n in range(BURST))
    )

    redis = connect(StoreConfig(backend="redis", url=redis_server.url))
    url = f"{proxy.url}/v1/videos/{video.id}/content"
    try:
        async with aiohttp.ClientSession() as http:
            reads, looks = await _counters(redis)
            for _ in range(DOWNLOADS):
                async with http.get(url, headers={"Authorization": f"Bearer {ALICE}"}) as reply:
                    assert reply.status == 200 and len(await reply.read()) == 50_000
            reads_after, looks_after = await _counters(redis)
    finally:
        await redis.aclose()
    round_trips = reads_after - reads - 1 - (looks_after - looks)
    print(f"Redis round trips in {DOWNLOADS} downloads after {BURST} creates: {round_trips}")
    # 52-56 before (the creates' health reports, one each); now at most the last report of
    # the burst and a lease renewal land in the window
    assert round_trips <= 3, round_trips
