"""Cleanup contexts that join an instance to its fleet when ``store.backend`` is redis.

``fleet_limits`` (before the providers and health): the bus, the shared counters and
``FleetLimits`` in place of the process's own ``Limits``, and the task that renews this
instance's holds. ``fleet_health`` (after health): the health board in Redis, fed with every
``HealthEvent`` this instance sees and read back whenever another instance changes it (or every
``BOARD_REFRESH`` seconds, should a notice be lost), and the admin notices (a reload made
through one instance is made by all). It starts the bus last, once every listener is in.
On the sqlite backend both do nothing.

``broadcast_reload`` and ``flush_health`` are what the admin API calls: the reload notice,
and waiting until a drain is on the shared board before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from aiohttp import web

from monitoring.board_sync import HealthSync
from monitoring.health import SUCCESS_WINDOW
from monitoring.redis_board import HEALTH_CHANNEL, RedisBoard
from router import appkeys as keys
from router.fleet.bus import RedisBus
from router.limits.fleet import FleetLimits
from router.limits.redis_counters import RedisCounters
from router.runtime.reload import reload_config

log = logging.getLogger(__name__)

ADMIN_CHANNEL = "sora:admin"
RELOAD = "reload"


def instance_id() -> str:
    """This process among the fleet's (host-unique pid plus random bytes)."""
    return f"{os.getpid()}-{os.urandom(4).hex()}"


async def fleet_limits(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG].current
    if config.store.backend != "redis":
        yield
        return
    client, clock = app[keys.REDIS], app[keys.CLOCK]
    bus = RedisBus(client)
    counters = RedisCounters(client, bus, clock)
    limits = FleetLimits(config, clock, counters)
    app[keys.BUS] = bus
    app[keys.INSTANCE] = instance_id()
    app[keys.LIMITS] = limits
    renewing = asyncio.get_running_loop().create_task(
        limits.keep_alive(counters.hold_ttl / 3), name="limits-renew"
    )
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await limits.settle()
        await bus.stop()


async def fleet_health(app: web.Application) -> AsyncIterator[None]:
    bus = app.get(keys.BUS)
    if bus is None:
        yield
        return
    health, pool = app[keys.HEALTH], app[keys.POOL]
    board = RedisBoard(app[keys.REDIS], health.outliers.settings, SUCCESS_WINDOW)
    sync = HealthSync(health, board, lambda: [entry.name for entry in pool])
    app[keys.HEALTH_SYNC] = sync
    bus.listen(HEALTH_CHANNEL, sync.changed)
    me = app[keys.INSTANCE]
    bus.listen(ADMIN_CHANNEL, lambda text: _admin_notice(app, me, text))
    await sync.start()
    await bus.start()
    try:
        yield
    finally:
        await sync.stop()


def _admin_notice(app: web.Application, me: str, text: str) -> None:
    what, _, origin = text.partition(" ")
    if what == RELOAD and origin != me:
        task = asyncio.get_running_loop().create_task(_reload(app), name="fleet-reload")
        app[keys.HEALTH_SYNC].keep(task)


async def _reload(app: web.Application) -> None:
    result = await reload_config(app)
    if result.applied:
        log.info("config reloaded at another instance's request")
    else:
        log.warning("a fleet reload changed nothing here: %s", "; ".join(result.problems))


async def broadcast_reload(app: web.Application) -> None:
    """Ask every other instance to reload its config file too."""
    bus = app.get(keys.BUS)
    if bus is not None:
        await bus.publish(ADMIN_CHANNEL, f"{RELOAD} {app[keys.INSTANCE]}")


async def flush_health(app: web.Application) -> None:
    """Return once every health change made here is on the shared board."""
    sync = app.get(keys.HEALTH_SYNC)
    if sync is not None:
        await sync.flush()
