"""``GET /v1/videos/{id}/events``: queued -> in_progress with rising progress -> completed, as
server-sent events; a client that reconnects with ``Last-Event-ID`` misses no change
(issue 18, acceptance 4)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    sim_provider,
    upstream_provider,
)
from tests.redis_rig import RedisServer


async def read_events(
    proxy: RunningProxy, video_id: str, *, last: str | None = None, stop_after: int | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """(id, Video object) of each event, until the stream ends or ``stop_after`` were read."""
    headers = {"Authorization": f"Bearer {ALICE}"}
    if last is not None:
        headers["Last-Event-ID"] = last
    events: list[tuple[int, dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/v1/videos/{video_id}/events", headers=headers) as response,
    ):
        assert response.status == 200
        assert response.content_type == "text/event-stream"
        event_id, data = None, None
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
            elif not line and event_id is not None and data is not None:
                events.append((event_id, data))
                event_id, data = None, None
                if stop_after is not None and len(events) == stop_after:
                    break
    return events


async def test_a_stream_follows_a_render_to_its_end(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("sim", render_seconds=1.0, queue_seconds=0.3)])
    video = await proxy.client().videos.create(prompt="a slow kite")
    events = await read_events(proxy, video.id)
    statuses = [body["status"] for _, body in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert "in_progress" in statuses
    progress = [body["progress"] for _, body in events]
    assert progress == sorted(progress) and len(set(progress)) >= 3  # rising
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_a_stream_through_one_instance_follows_a_job_created_through_another(
    proxy_factory: ProxyFactory, redis_server: RedisServer, simulators: SimulatorFactory
) -> None:
    sim = await simulators(render_seconds=1.0, queue_seconds=0.3)
    fleet = {"backend": "redis", "url": redis_server.url}
    server = {"link_secret": "fleet-link-secret-0123456789abcdef"}
    created_on, streamed_on = [
        await proxy_factory(
            [upstream_provider("a", "openai", sim)],
            store=fleet,
            server=server,
            assets={"copy": False},
        )
        for _ in range(2)
    ]
    video = await created_on.client().videos.create(prompt="a slow kite")
    events = await read_events(streamed_on, video.id)
    statuses = [body["status"] for _, body in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed" and "in_progress" in statuses
    progress = [body["progress"] for _, body in events]
    assert progress == sorted(progress) and len(set(progress)) >= 3
    # a client that moves to another instance mid-stream resumes there with Last-Event-ID
    again = await created_on.client().videos.create(prompt="another slow kite")
    first = await read_events(streamed_on, again.id, stop_after=2)
    rest = await read_events(created_on, again.id, last=str(first[-1][0]))
    assert rest and rest[0][0] > first[-1][0] and rest[-1][1]["status"] == "completed"


async def test_a_reconnect_with_last_event_id_misses_no_change(proxy_factory: ProxyFactory) -> None:
    # no copy of the output: its bookkeeping would change the settled job (a newer state to send)
    proxy = await proxy_factory([sim_provider("sim", render_seconds=1.0)], assets={"copy": False})
    video = await proxy.client().videos.create(prompt="a slow kite")
    first = await read_events(proxy, video.id, stop_after=2)
    rest = await read_events(proxy, video.id, last=str(first[-1][0]))
    assert rest and rest[0][0] > first[-1][0]  # only what is newer than the last seen
    assert rest[-1][1]["status"] == "completed"
    again = await read_events(proxy, video.id, last=str(rest[-1][0]))
    assert again == []  # a settled job the client has seen: the stream just ends


async def test_another_keys_job_has_no_stream(proxy: RunningProxy) -> None:
    video = await proxy.client(BOB).videos.create(prompt="bob's")
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{proxy.url}/v1/videos/{video.id}/events",
            headers={"Authorization": f"Bearer {ALICE}"},
        ) as response,
    ):
        assert response.status == 404
