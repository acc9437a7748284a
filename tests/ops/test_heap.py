"""Long-lived objects are frozen out of full GC passes while the app runs, and released after;
young collections are spaced out while it runs."""

from __future__ import annotations

import asyncio
import gc
import logging
import types

import openai
import pytest

from router import appkeys as keys
from router.runtime.heap import YOUNG_THRESHOLD
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    sim_provider,
    upstream_provider,
    wait_for,
)


async def test_the_running_app_freezes_its_heap_and_unfreezes_on_stop(
    proxy_factory: ProxyFactory,
) -> None:
    before = gc.get_threshold()
    proxy = await proxy_factory([sim_provider("sim-a")])
    video = await proxy.client().videos.create(prompt="frozen")
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
    await proxy.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
    assert video.id.startswith("video_")


async def test_a_download_the_client_drops_leaves_no_garbage_cycle(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Young collections are rare now, so whatever a dropped download left in a reference cycle
    # (its frames hold the upstream's buffered chunks) would stay for long. Nor is a client
    # hanging up logged as an error.
    sim = await simulators(render_seconds=0, video_bytes=8 * 2**20)
    # no copy: the download streams from the upstream (a copy running beside it would also be
    # cut at the proxy's stop, and the simulator logs that as its own error)
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)], assets={"copy": False})
    video = await proxy.client().videos.create(prompt="dropped")
    await finished_job(proxy, video.id)
    gc.collect()
    gc.disable()  # so that only the collection below finds what the download left in cycles
    try:
        await drop_a_download(proxy, video.id)
        stranded = saved_frames_of("/router/")
    finally:
        gc.enable()
    assert stranded == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def drop_a_download(proxy: RunningProxy, video_id: str) -> None:
    """Start downloading ``video_id``, reset the connection, wait for the handler to end."""
    route = {"route": "/v1/videos/{video_id}/content", "status": "200"}  # the status it began
    registry = proxy.app[keys.METRICS].registry
    host, port = proxy.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /v1/videos/{video_id}/content HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {ALICE}\r\n\r\n".encode()
    )
    await reader.readexactly(65536)  # the download is under way
    writer.transport.abort()

    async def handler_gave_up() -> bool:
        return registry.get_sample_value("sora_proxy_requests_total", route) == 1

    await wait_for(handler_gave_up)


async def test_an_error_answer_leaves_no_garbage_cycle(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("sim-a")])
    client = proxy.client()
    gc.collect()
    gc.disable()  # as above: only the collection below finds cycles
    try:
        with pytest.raises(openai.NotFoundError):
            await client.videos.retrieve("video_unknown")
        stranded = saved_frames_of("/router/")
    finally:
        gc.enable()
    assert stranded == []


def saved_frames_of(path_part: str) -> list[str]:
    """Names of the frames under ``path_part`` that a full collection finds in cycles."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return [
            o.f_code.co_name
            for o in gc.garbage
            if isinstance(o, types.FrameType) and path_part in o.f_code.co_filename
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
