"""Webhook delivery when proxies die, with real processes (issue 18, acceptance 3; the brief's
fleet points): an event whose delivery was in flight when the proxy was killed with -9 is
delivered by the restarted proxy (SQLite), or by another instance on the same Redis once the
dead one's lease lapses; and with two instances delivering from one outbox, every event is
acknowledged once and never sent by both at the same time.

The proxies are ``python -m router serve`` processes; the upstream is a simulator and the
receiver an aiohttp app in this test process, which checks every delivery with the SDK's
``verify_signature``. The receiver can hold a delivery open ("hang") until the test lets go,
so the test knows the event was claimed and in flight when the proxy died.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import yaml
from aiohttp import web

from providers.simulator.server import Simulator
from providers.simulator.settings import SimulationSettings
from tests.conftest import ALICE, wait_for
from tests.proxy_process import ProxyProcess, free_port, start_proxy_process
from tests.redis_rig import RedisServer

SECRET = "whsec_" + base64.b64encode(b"sixteen-or-more-bytes!").decode()
LEASE = 1.0  # seconds: a dead instance's claim lapses quickly
WITHIN = 30.0  # seconds a delivery may take here (process starts, a lease, a busy machine)


@dataclass
class Receiver:
    """Verifies each delivery; holds the first ``hang`` deliveries open until ``release``;
    answers 500 to the first ``fail`` attempts of each event; records overlapping attempts."""

    hang: int = 0
    fail: int = 0
    url: str = ""
    attempts: list[str] = field(default_factory=list)  # webhook-id of every attempt
    acked: list[str] = field(default_factory=list)
    overlapped: list[str] = field(default_factory=list)  # ids sent twice at once
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    sdk: openai.OpenAI = field(default_factory=lambda: openai.OpenAI(api_key="unused"))
    _open: Counter[str] = field(default_factory=Counter)

    async def handle(self, request: web.Request) -> web.Response:
        payload = await request.read()
        self.sdk.webhooks.verify_signature(payload, dict(request.headers), secret=SECRET)
        event_id = request.headers["webhook-id"]
        self.attempts.append(event_id)
        self.bodies[event_id] = orjson.loads(payload)
        self._open[event_id] += 1
        try:
            if self._open[event_id] > 1:
                self.overlapped.append(event_id)
            if len(self.attempts) <= self.hang:
                await self.release.wait()  # the sender dies meanwhile
            await asyncio.sleep(0.05)  # a receiver that takes a moment: overlaps would show
            if self.attempts.count(event_id) <= self.fail:
                return web.Response(status=500)
            self.acked.append(event_id)
            return web.Response(status=200)
        finally:
            self._open[event_id] -= 1


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", found.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    found.url = f"http://{host}:{port}/hooks"
    yield found
    found.release.set()
    found.sdk.close()
    await runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[Simulator]:
    sim = Simulator(SimulationSettings(render_seconds=0.3), api_key="sk-upstream")
    await sim.start()
    yield sim
    await sim.stop()


def write_config(
    tmp_path: Path, name: str, upstream: Simulator, hook: str, store: dict[str, Any]
) -> Path:
    config = {
        "server": {"host": "127.0.0.1", "link_secret": "fleet-link-secret-0123456789abcdef"},
        "store": {"path": str(tmp_path / f"{name}.db"), **store},
        "keys": [{"name": "alice", "key": ALICE, "webhook_url": hook, "webhook_secret": SECRET}],
        "providers": [
            {
                "name": "upstream",
                "kind": "openai",
                "base_url": f"{upstream.base_url}/v1",
                "api_key": "sk-upstream",
                "poll_interval": 0.05,
                "timeout": 5,
                "models": {"sora-2": {"price_per_second": 0.1}},
            }
        ],
        "webhooks": {
            "first_delay": 0.05,
            "factor": 1.5,
            "max_delay": 0.2,
            "timeout": WITHIN,  # a held delivery waits for the kill, not for a timeout
            "lease": LEASE,
            "allow_private_addresses": True,
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def create(proxy: ProxyProcess, prompt: str) -> str:
    headers = {"Authorization": f"Bearer {ALICE}"}
    async with (
        aiohttp.ClientSession(headers=headers) as http,
        http.post(f"{proxy.url}/v1/videos", json={"prompt": prompt}) as response,
    ):
        assert response.status == 200
        video_id: str = (await response.json())["id"]
        return video_id


async def until(condition: Any) -> None:
    async def holds() -> bool:
        return bool(condition())

    await wait_for(holds, within=WITHIN)


async def test_a_delivery_in_flight_at_kill_9_is_made_by_the_restarted_proxy(
    tmp_path: Path, receiver: Receiver, upstream: Simulator
) -> None:
    receiver.hang = 1
    config = write_config(tmp_path, "proxy", upstream, receiver.url, {})
    port = free_port()
    proxy = await start_proxy_process(config, port, tmp_path / "proxy.log")
    try:
        video_id = await create(proxy, "a kite")
        await until(lambda: receiver.attempts)  # claimed, sent, and held open
        proxy.kill_9()
        proxy = ProxyProcess(config, port, tmp_path / "proxy.log")  # same port, same file
        await proxy.ready()
        await until(lambda: receiver.acked)
    finally:
        await proxy.stop()
    (event_id,) = set(receiver.attempts)  # the same webhook-id before and after the crash
    assert receiver.acked == [event_id] and len(receiver.attempts) == 2
    assert receiver.bodies[event_id]["data"] == {"id": video_id}
    assert receiver.bodies[event_id]["type"] == "video.completed"


async def test_another_instance_delivers_what_a_killed_one_queued_and_held(
    tmp_path: Path, receiver: Receiver, upstream: Simulator, redis_server: RedisServer
) -> None:
    receiver.hang = 1
    store = {"backend": "redis", "url": redis_server.url}
    first = await start_proxy_process(
        write_config(tmp_path, "a", upstream, receiver.url, store), log=tmp_path / "a.log"
    )
    second: ProxyProcess | None = None
    try:
        video_id = await create(first, "a kite")
        await until(lambda: receiver.attempts)  # the first instance holds the event
        second = await start_proxy_process(
            write_config(tmp_path, "b", upstream, receiver.url, store), log=tmp_path / "b.log"
        )
        await metric_is(second, "sora_proxy_webhook_queue_depth", lambda depth: depth == 1)
        await metric_is(second, "sora_proxy_webhook_oldest_undelivered_seconds", lambda s: s > 0)
        first.kill_9()
        await until(lambda: receiver.acked)  # after the dead one's lease lapsed
        await metric_is(second, "sora_proxy_webhook_queue_depth", lambda depth: depth == 0)
    finally:
        await first.stop()
        if second is not None:
            await second.stop()
    (event_id,) = set(receiver.attempts)
    assert receiver.acked == [event_id] and len(receiver.attempts) == 2
    assert receiver.bodies[event_id]["data"] == {"id": video_id}


async def test_two_instances_deliver_each_event_once_and_never_both_at_once(
    tmp_path: Path, receiver: Receiver, upstream: Simulator, redis_server: RedisServer
) -> None:
    receiver.fail = 2  # every event is tried three times: retries go to either instance
    store = {"backend": "redis", "url": redis_server.url}
    proxies = [
        await start_proxy_process(
            write_config(tmp_path, name, upstream, receiver.url, store), log=tmp_path / "p.log"
        )
        for name in ("a", "b")
    ]
    try:
        videos = [await create(proxies[n % 2], f"kite {n}") for n in range(8)]
        await until(lambda: len(receiver.acked) == len(videos))

        async def all_counted() -> bool:  # each instance counts its 200s just after they came
            return await delivered_total(proxies) >= len(videos)

        await wait_for(all_counted, within=WITHIN)
        delivered = await delivered_total(proxies)
    finally:
        for proxy in proxies:
            await proxy.stop()
    assert sorted(receiver.bodies[e]["data"]["id"] for e in receiver.acked) == sorted(videos)
    assert len(set(receiver.acked)) == len(receiver.acked)  # each event acknowledged once
    assert Counter(receiver.attempts) == dict.fromkeys(receiver.acked, 3)
    assert receiver.overlapped == []  # no event was ever sent by both at once
    assert delivered == len(videos)


async def metric_is(proxy: ProxyProcess, name: str, check: Callable[[float], bool]) -> None:
    """Wait until the proxy's sample of ``name`` (a metric without labels) passes ``check``:
    the queue gauges are the shared outbox's, so any instance tells them."""

    async def holds() -> bool:
        async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/metrics") as r:
            for line in (await r.text()).splitlines():
                if line.startswith(name + " "):
                    return check(float(line.rsplit(" ", 1)[1]))
        return False

    await wait_for(holds, within=WITHIN)


async def delivered_total(proxies: list[ProxyProcess]) -> float:
    """The instances' delivered counters, summed (as a Prometheus query would)."""
    total = 0.0
    async with aiohttp.ClientSession() as http:
        for proxy in proxies:
            async with http.get(f"{proxy.url}/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith('sora_proxy_webhook_deliveries_total{outcome="delivered"}'):
                        total += float(line.rsplit(" ", 1)[1])
    return total
