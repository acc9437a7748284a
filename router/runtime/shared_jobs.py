"""Jobs shared by a fleet (``store.backend: redis``): the store, its events, the poll cache and
the poller's tracking on the shared poll plan, built for ``router.app``'s store context.

Every instance reads and writes jobs in Redis (``router.store.redis``), hears every change
through the job event streams (``router.events.redis``), answers client polls from its bounded
cache of views kept current by those events (``router.jobs.views``), and polls the providers
whose lease it holds (``router.jobs.tracking.PlannedTracking``: due times in
``router.fleet.redis_plan``, leases in ``router.fleet.redis_leases``, owned by this instance's
id from ``router.runtime.fleet``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from router import appkeys as keys
from router.events.redis import RedisJobEvents
from router.fleet.redis_leases import RedisLeases
from router.fleet.redis_plan import RedisPlan
from router.jobs.schedule import Schedule
from router.jobs.tracking import PlannedTracking
from router.jobs.views import JobViews
from router.records.job import Job
from router.store.redis import RedisJobStore


@contextlib.asynccontextmanager
async def shared_jobs(app: web.Application) -> AsyncIterator[None]:
    config, client, clock = app[keys.CONFIG].current, app[keys.REDIS], app[keys.CLOCK]

    def first_read(job: Job) -> float | None:
        """A new job's first status read: one poll interval of its provider from now (the
        store plans it with the insert)."""
        if job.state.finished:
            return None
        return clock() + app[keys.POOL].poll_interval(job.current.provider)

    store = RedisJobStore(client, clock=clock, first_read=first_read)
    events = RedisJobEvents(client)
    await events.start()
    views = JobViews(store, events, size=config.store.poll_cache)
    plan = RedisPlan(client)
    leases = RedisLeases(client, app[keys.INSTANCE], clock)

    def tracking(schedule: Schedule) -> PlannedTracking:
        settings = app[keys.CONFIG].current.store
        return PlannedTracking(
            store=store,
            plan=plan,
            leases=leases,
            schedule=schedule,
            clock=clock,
            providers=lambda: [entry.name for entry in app[keys.POOL]],
            lease_ttl=settings.lease_ttl,
            batch=settings.poll_batch,
        )

    try:
        await views.start()
        app[keys.STORE], app[keys.EVENTS], app[keys.VIEWS] = store, events, views
        app[keys.TRACKING] = tracking
        yield
    finally:
        await views.close()
        await events.close()
