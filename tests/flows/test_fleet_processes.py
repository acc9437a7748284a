"""Issue 17 over real processes: three ``python -m router serve`` on one Redis (with
``appendonly yes``, ``appendfsync always``) behind Debian's nginx, round robin. The ``openai``
SDK and the relay client talk to nginx only: every job completes and is visible, listable,
downloadable and deletable through any instance, and a signed link works whichever instance
minted it; one ``Idempotency-Key`` through all three makes one render. Faults: a kill -9 of
the instance holding the poll lease loses no job and renders none twice; Redis stopped for
10 s under load answers creates 503 with ``Retry-After``, loses nothing acknowledged, and
service resumes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from router.config.model import StoreConfig
from router.fleet.redis_leases import lease_key
from router.jobs.tracking import LEASE_PREFIX
from router.store.redis_client import connect
from tests.conftest import ALICE, SimulatorFactory, upstream_provider, wait_for
from tests.flows.test_fleet_behind_nginx import nginx_ready, stop_all
from tests.proxy_process import ProxyProcess, free_port, start_processes
from tests.redis_rig import RedisServer, start_server
from tests.relay_client import RelayClient

pytestmark = [
    pytest.mark.skipif(
        subprocess.run(["which", "nginx"], capture_output=True).returncode != 0,
        reason="nginx: scripts/test installs it",
    ),
    pytest.mark.timeout(300),  # three proxy processes, nginx and Redis on a loaded machine
]

AUTH = {"Authorization": f"Bearer {ALICE}"}
VIDEO_BYTES = 40_000


@dataclass
class Fleet:
    url: str  # nginx
    proxies: list[ProxyProcess]
    redis: RedisServer
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    def client(self, url: str | None = None) -> openai.AsyncOpenAI:
        """An SDK client of nginx (or of one instance), closed with the fleet: an open
        keep-alive connection would hold a proxy's graceful shutdown."""
        client = openai.AsyncOpenAI(base_url=f"{url or self.url}/v1", api_key=ALICE, max_retries=0)
        self.clients.append(client)
        return client


@contextlib.asynccontextmanager
async def fleet_behind_nginx(
    tmp_path: Path, providers: list[dict[str, Any]], **store: Any
) -> AsyncIterator[Fleet]:
    """Three instances of one config (but their own ``store.path``) behind nginx."""
    redis = start_server(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "always")
    proxies: list[ProxyProcess] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        url = f"http://127.0.0.1:{free_port()}"
        ports = [free_port() for _ in range(3)]
        docs: list[dict[str, Any]] = [
            {
                "server": {
                    "host": "127.0.0.1",
                    "public_url": url,  # links point at the load balancer
                    "link_secret": "process-fleet-link-secret-0123456789",
                },
                "store": {
                    "backend": "redis",
                    "url": redis.url,
                    "path": str(tmp_path / f"jobs-{index}.db"),
                    **store,
                },
                "assets": {"path": str(tmp_path / "assets")},  # one copy the fleet shares
                "keys": [{"name": "alice", "key": ALICE}],
                "providers": providers,
            }
            for index in range(len(ports))
        ]
        await start_processes(tmp_path, docs, ports, proxies)
        directory = tmp_path / "nginx"
        directory.mkdir()
        nginx = await nginx_ready(directory, int(url.rsplit(":", 1)[1]), ports)
        fleet = Fleet(url, proxies, redis)
        try:
            yield fleet
        finally:
            for client in fleet.clients:
                await client.close()
    finally:
        await stop_all(nginx, proxies)
        redis.stop()


async def all_completed(client: openai.AsyncOpenAI, ids: list[str], within: float = 60) -> None:
    async def done() -> bool:
        for video_id in ids:
            video = await client.videos.retrieve(video_id)
            assert video.status != "failed", video.error
            if video.status != "completed":
                return False
        return True

    await wait_for(done, within=within)


async def test_every_job_lives_on_every_instance_behind_nginx(
    tmp_path: Path, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=1.0, video_bytes=VIDEO_BYTES)
    relay = await simulators(render_seconds=1.0, video_bytes=VIDEO_BYTES)
    providers = [
        upstream_provider("a", "openai", sim, poll_interval=0.2),
        upstream_provider("r", "relay", relay, poll_interval=0.2),
    ]
    async with fleet_behind_nginx(tmp_path, providers) as fleet:
        client = fleet.client()
        ids = [
            (await client.videos.create(model="sora-2", prompt=f"take {n}")).id for n in range(6)
        ]
        await all_completed(client, ids)
        listed = await client.videos.list(limit=100)
        assert sorted(v.id for v in listed.data) == sorted(ids)
        for proxy in fleet.proxies:  # each instance answers for every job, nginx aside
            direct = fleet.client(proxy.url)
            for video_id in ids:
                assert (await direct.videos.retrieve(video_id)).status == "completed"
            content = await direct.videos.download_content(ids[0])
            assert len(content.content) == VIDEO_BYTES

        relay_client = RelayClient(fleet.url, ALICE)
        try:
            tasks = [await relay_client.create(model="sora-2", prompt=f"r{n}") for n in range(3)]
            for task_id in tasks:
                task = await relay_client.finish(task_id, within=60)
                assert task["status"] == "SUCCESS"
                for _ in range(3):  # the signed link, through whichever instance nginx picks
                    status, video = await relay_client.fetch(task["data"]["output"])
                    assert (status, len(video)) == (200, VIDEO_BYTES)
        finally:
            await relay_client.close()

        headers = {**AUTH, "Idempotency-Key": "one-render"}
        body = {"model": "sora-2", "prompt": "once", "seconds": "4"}
        before = sim.stats.creates_received + relay.stats.creates_received
        async with aiohttp.ClientSession() as http:

            async def create(url: str) -> str:
                async with http.post(f"{url}/v1/videos", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    return str((await r.json())["id"])

            same = await asyncio.gather(*(create(p.url) for p in fleet.proxies))
        assert len(set(same)) == 1
        assert sim.stats.creates_received + relay.stats.creates_received == before + 1

        for video_id in ids:
            await client.videos.delete(video_id)
        for proxy in fleet.proxies:
            for video_id in ids:
                with pytest.raises(openai.NotFoundError):
                    await fleet.client(proxy.url).videos.retrieve(video_id)


async def test_a_killed_lease_holder_and_a_stopped_redis_lose_nothing(
    tmp_path: Path, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=3.0)
    providers = [upstream_provider("a", "openai", sim, poll_interval=0.2)]
    async with fleet_behind_nginx(tmp_path, providers, lease_ttl=2.0) as fleet:
        client = fleet.client()
        ids = [
            (await client.videos.create(model="sora-2", prompt=f"take {n}")).id for n in range(9)
        ]
        holder = await _lease_holder(fleet)
        holder.kill_9()
        survivors = [p for p in fleet.proxies if p is not holder]
        await all_completed(fleet.client(survivors[0].url), ids)
        assert sim.stats.creates_received == 9  # none rendered twice

        acknowledged, refused = await _creates_while_redis_stops(fleet, survivors)
        assert refused, "no create met the outage"
        assert all(status == 503 and retry for status, retry in refused), refused
        survivor = fleet.client(survivors[1].url)

        async def all_found() -> bool:  # nothing acknowledged was lost
            try:
                for video_id in acknowledged:
                    await survivor.videos.retrieve(video_id)
            except openai.InternalServerError:  # a pooled connection from before the outage
                return False
            return True

        await wait_for(all_found, within=30)


async def _lease_holder(fleet: Fleet) -> ProxyProcess:
    """The process holding provider "a"'s poll lease (its owner id starts with its pid)."""
    redis = connect(StoreConfig(backend="redis", url=fleet.redis.url))
    try:
        owner: list[str] = []

        async def leased() -> bool:
            value = await redis.get(lease_key(LEASE_PREFIX + "a"))
            if value is not None:
                owner.append(value.decode() if isinstance(value, bytes) else str(value))
            return bool(owner)

        await wait_for(leased, within=30)
    finally:
        await redis.aclose()
    pid = int(owner[0].split("-", 1)[0])
    return next(p for p in fleet.proxies if p.process.pid == pid)


async def _creates_while_redis_stops(
    fleet: Fleet, survivors: list[ProxyProcess]
) -> tuple[list[str], list[tuple[int, bool]]]:
    """Creates at the survivors before, during and after 10 s without Redis: the ids
    acknowledged, and (status, had Retry-After) of every refusal."""
    acknowledged: list[str] = []
    refused: list[tuple[int, bool]] = []
    body = {"model": "sora-2", "prompt": "under load", "seconds": "4"}
    async with aiohttp.ClientSession() as http:

        async def create(url: str) -> bool:
            async with http.post(f"{url}/v1/videos", json=body, headers=AUTH) as r:
                if r.status == 200:
                    acknowledged.append(str((await r.json())["id"]))
                    return True
                refused.append((r.status, "Retry-After" in r.headers))
                return False

        for proxy in survivors:
            assert await create(proxy.url)
        fleet.redis.kill()
        loop = asyncio.get_running_loop()
        back_at = loop.time() + 10.0
        while loop.time() < back_at:  # load for the whole outage, each answer awaited
            await asyncio.gather(*(create(p.url) for p in survivors))
        fleet.redis.start()

        async def resumed() -> bool:
            if not all([await create(p.url) for p in survivors]):
                return False
            for proxy in survivors:  # reads too, through every pooled connection
                async with http.get(f"{proxy.url}/v1/videos?limit=100", headers=AUTH) as r:
                    if r.status != 200:
                        return False
            return True

        await wait_for(resumed, within=30)
    return acknowledged, refused
