"""The health cleanup context: provider health, the selector over it, and the probe task.

Built after the providers (it probes their adapters) and before the job store and poller
(which report outcomes to it). The probe loop (``monitoring.health.HealthChecker``) runs as a
background task for the life of the app and is cancelled, then awaited, on the way out.
Its first round starts at once; ``/readyz`` waits for it (``keys.HEALTH_CHECKER``).
``live_state`` reads what the scrape-time gauges of ``monitoring.state`` export.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from monitoring.health import HealthChecker, ProviderHealth
from monitoring.outlier import OutlierSettings
from monitoring.state import ProviderState, StateSnapshot
from router import appkeys as keys
from router.routing.selection import Selector


def outlier_settings(app: web.Application) -> OutlierSettings:
    h = app[keys.CONFIG].current.health
    return OutlierSettings(
        consecutive_failures=h.consecutive_failures,
        failure_rate=h.failure_rate,
        min_volume=h.min_volume,
        base_ejection=h.base_ejection,
        max_ejection=h.max_ejection,
        max_ejected_share=h.max_ejected_share,
    )


async def health_context(app: web.Application) -> AsyncIterator[None]:
    config, pool = app[keys.CONFIG].current, app[keys.POOL]
    health = ProviderHealth([e.name for e in pool], outlier_settings(app), app[keys.CLOCK])
    app[keys.HEALTH] = health
    app[keys.SELECTOR] = Selector(pool, config, health, app[keys.LIMITS])
    checker = HealthChecker(
        health, lambda: [(e.name, e.adapter) for e in pool], config.health.probe_interval
    )
    app[keys.HEALTH_CHECKER] = checker
    task = asyncio.get_running_loop().create_task(checker.run(), name="health-checker")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def live_state(app: web.Application) -> StateSnapshot:
    """What the scrape-time gauges show; in-flight counts come from the limits' own counters,
    so a scrape costs the same with 100 jobs in flight as with 100,000."""
    health, selector, poller = app[keys.HEALTH], app[keys.SELECTOR], app[keys.POLLER]
    limits = app[keys.LIMITS]
    providers = {}
    for entry in app[keys.POOL]:
        name = entry.name
        ejected, cooling = health.ejected(name), health.cooling(name)
        providers[name] = ProviderState(
            healthy=not (ejected or cooling),
            ejected=ejected,
            cooling=cooling,
            ejections=health.outliers.view(name).ejections,
            in_flight=limits.rendering(name),
        )
    return StateSnapshot(
        providers=providers,
        panic=selector.panicking(),
        scheduled_polls=poller.scheduled,
        overdue_polls=poller.overdue(),
    )
