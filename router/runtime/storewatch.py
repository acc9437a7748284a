"""``store_watch``: while the job store cannot write, probe it until it can.

A failed write (disk full, I/O, a Redis that refuses writes) turns the store's ``writable``
false (``router.store.base.WriteHealth``): creates answer 503 ``store_unavailable``
(``router.jobs.dispatch``) and ``/readyz`` says ``store_writes``, so a load balancer stops
sending work here. Nothing else may write meanwhile (no creates come, and
jobs in flight may all be done), so this cleanup context makes one small write every
``PROBE_INTERVAL`` while the store is failing; the first that succeeds turns it writable again,
without a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from router import appkeys as keys
from router.fleet.bus import raise_if_cancelling
from router.store.base import WriteHealth

PROBE_INTERVAL = 1.0  # seconds between write probes while the store is failing


async def store_watch(app: web.Application) -> AsyncIterator[None]:
    watcher = asyncio.create_task(_watch(app[keys.STORE]), name="store-watch")
    yield  # aiohttp resumes this generator at cleanup whatever happened meanwhile
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)


async def _watch(store: WriteHealth) -> None:
    while True:
        raise_if_cancelling()  # a cancel the store's client swallowed in the last probe
        await asyncio.sleep(PROBE_INTERVAL)
        if not store.writable:
            await store.probe_write()
