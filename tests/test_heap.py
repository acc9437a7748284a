"""Long-lived objects are frozen out of full GC passes while the app runs, and released after;
young collections are spaced out while it runs."""

from __future__ import annotations

import gc

from router.heap import YOUNG_THRESHOLD
from tests.conftest import ProxyFactory, sim_provider


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
