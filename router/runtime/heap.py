"""Keeps the cyclic garbage collector's full passes off the request path.

With 100k jobs in memory, a full collection walks millions of long-lived objects that are never
garbage: each pass took hundreds of milliseconds, found nothing and stalled every request
(figures in bench/README.md, "Figures behind the design"). Jobs live until deleted and form no
reference cycles, so the survivors are moved to the permanent generation (``gc.freeze``), which
full passes skip. Frozen objects are still freed by reference counting; only a cycle that turns
into garbage after being frozen would stay, so a young collection runs before each freeze, and
once per ``FULL_EVERY`` the heap is unfrozen and collected whole: one bounded pause instead of
many.

Young collections are spaced out too (``YOUNG_THRESHOLD``). CPython starts one whenever
allocations outrun deallocations by 700; the requests in flight hold thousands of objects
between them (32 concurrent creates, about 5,000), so that count crossed 700 and fell back
again all the time, with nothing to find: under create load a young collection ran every
few creates and, the survivors being scattered over a large heap, cost a noticeable share of
each create. At 10,000 they are about a hundred times rarer and cost a tenth as much a create
(bench/README.md, "Figures behind the design").
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

from aiohttp import web

FREEZE_INTERVAL = 30.0  # seconds between freezes of what survived
FULL_EVERY = 20  # every 20th round (10 min) collects everything once
YOUNG_THRESHOLD = 10_000  # net allocations between young collections (CPython's default: 700)


async def frozen_heap(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: freeze after start-up (the store has loaded), then periodically; young
    collections at ``YOUNG_THRESHOLD`` while the app runs."""
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *thresholds[1:])
    gc.collect()
    gc.freeze()
    task = asyncio.get_running_loop().create_task(_refreeze(), name="gc-freeze")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


async def _refreeze() -> None:
    rounds = 0
    while True:
        await asyncio.sleep(FREEZE_INTERVAL)
        rounds += 1
        if rounds % FULL_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()
