"""The webhook worker's own rules, on a real SQLite store and outbox and a real receiver: an
attempt whose lease is taken over (another instance claimed the event after the lease lapsed)
is called off instead of sending alongside the new holder; a listener that falls behind the
job events finds what it missed by walking the recent jobs again."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from monitoring.metrics import Metrics
from providers.base import UpstreamJob, UpstreamStatus
from router.config.live import LiveConfig
from router.events.base import Subscription
from router.events.local import LocalJobEvents
from router.jobs.views import JobViews, Views
from router.jobs.webhooks import Webhooks
from router.records.job import Attempt, Job, JobState, new_job_id
from router.store.outbox import OutboxEvent, SqliteWebhookOutbox
from router.store.sqlite import SqliteJobStore
from tests.clock import ManualClock
from tests.conftest import ALICE, build_config, sim_provider, wait_for

SECRET = "whsec_" + base64.b64encode(b"sixteen-or-more-bytes!").decode()
LEASE = 0.3  # seconds: renewed every 0.1 s while an attempt runs


class Rig:
    def __init__(self, tmp_path: Path, hook: str) -> None:
        keys = [{"name": "alice", "key": ALICE, "webhook_url": hook, "webhook_secret": SECRET}]
        webhooks = {"lease": LEASE, "timeout": 30, "allow_private_addresses": True}
        config = build_config(tmp_path, [sim_provider("sim")], keys=keys, webhooks=webhooks)
        self.clock = ManualClock()
        self.events = LocalJobEvents()
        self.store = SqliteJobStore(tmp_path / "jobs.db", on_change=self.events.deliver)
        self.outbox = SqliteWebhookOutbox(tmp_path / "jobs.db")
        self.metrics = Metrics()
        self.config = LiveConfig(config)
        self.hooks = self.webhooks()

    def webhooks(self, views: Views | None = None) -> Webhooks:
        return Webhooks(
            outbox=self.outbox,
            config=self.config,
            store=self.store,
            events=self.events,
            metrics=self.metrics,
            clock=self.clock,
            views=views,
        )

    async def completed_job(self) -> Job:
        return await self.complete(await self.queued_job())

    async def queued_job(self) -> Job:
        job = Job(
            id=new_job_id(),
            owner="alice",
            model="sora-2",
            prompt="p",
            size="1280x720",
            seconds=4,
            created_at=self.clock(),
        )
        job.attempts.append(Attempt(provider="sim", upstream_id="up-1", submitted_at=1.0))
        await self.store.insert(job)
        return job

    async def complete(self, job: Job) -> Job:
        version = job.version
        job.observe(UpstreamJob("up-1", UpstreamStatus.COMPLETED, 100), self.clock())
        assert await self.store.update(job, expected_version=version)
        return job

    async def queued_event(self) -> OutboxEvent:
        """The one event the outbox holds, once it is there (claimed)."""

        async def queued() -> bool:
            return (await self.outbox.pending())[0] == 1

        await wait_for(queued)
        (event,) = await self.outbox.claim(self.clock(), lease=60.0, limit=5)
        return event

    def counted(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "sora_proxy_webhook_deliveries_total", {"outcome": outcome}
        )
        return value or 0.0


@contextlib.asynccontextmanager
async def listening(hooks: Webhooks, changes: Subscription) -> AsyncIterator[None]:
    """``hooks`` listening on ``changes`` for as long as the block runs."""
    task = asyncio.create_task(hooks.listen(changes))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def held() -> AsyncIterator[tuple[str, list[str], asyncio.Event]]:
    """A receiver that holds every delivery open until the event is set: (url, ids, release)."""
    seen: list[str] = []
    release = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["webhook-id"])
        await release.wait()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/hooks", seen, release
    release.set()
    await runner.cleanup()


@pytest.fixture
async def rig(tmp_path: Path, held: tuple[str, list[str], asyncio.Event]) -> AsyncIterator[Rig]:
    found = Rig(tmp_path, held[0])
    await found.store.open()
    await found.outbox.open()
    yield found
    await found.hooks.stop()
    await found.outbox.close()
    await found.store.close()
    found.events.close()


async def test_an_attempt_whose_lease_was_taken_over_is_called_off(
    rig: Rig, held: tuple[str, list[str], asyncio.Event]
) -> None:
    _, seen, _ = held
    await rig.hooks.start()
    job = await rig.completed_job()

    async def sending() -> bool:
        return bool(seen)

    await wait_for(sending)  # claimed and in flight, held open by the receiver
    rig.clock.advance(LEASE + 1)  # ... as if its renewals stopped and the lease lapsed
    (taken,) = await rig.outbox.claim(rig.clock(), lease=60.0, limit=5)  # another instance
    assert taken.job_id == job.id and taken.id == seen[0]

    async def called_off() -> bool:
        return rig.counted("lease_lost") == 1

    await wait_for(called_off)
    assert rig.counted("delivered") == rig.counted("retry") == 0
    assert await rig.outbox.failed(taken, rig.clock() + 60, "HTTP 500")  # still ours


async def test_a_listener_that_fell_behind_walks_the_recent_jobs_again(rig: Rig) -> None:
    changes = rig.events.subscribe(limit=1)
    job = await rig.completed_job()  # two changes: the subscription of one is dropped
    async with listening(rig.hooks, changes):
        event = await rig.queued_event()
    assert event.job_id == job.id and event.type == "video.completed"


async def test_a_job_that_settled_while_nobody_listened_gets_its_event_at_start(
    rig: Rig, held: tuple[str, list[str], asyncio.Event]
) -> None:
    _, seen, release = held
    await rig.completed_job()  # settled by an instance that died before queueing
    release.set()
    await rig.hooks.start()

    async def delivered() -> bool:
        return rig.counted("delivered") == 1

    await wait_for(delivered)
    (event_id,) = seen
    assert (await rig.outbox.pending()) == (0, None) and event_id.startswith("evt_")
    assert await rig.hooks.backfill() == 0  # found again: already in the outbox, not re-added


async def test_a_settle_heard_before_this_processs_views_saw_it_is_read_from_the_store(
    rig: Rig,
) -> None:
    """Webhooks read a job heard settling from memory when it is settled there; in a fleet the
    views and the webhooks hear each event in either order, so a view still unsettled is
    older than the event and the job is read from the store instead."""
    views = JobViews(rig.store, rig.events)  # not started: its views stay as they were read
    hooks = rig.webhooks(views)
    changes = rig.events.subscribe()
    job = await rig.queued_job()
    cached = await views.read(job.id)
    assert cached is not None and cached.state is JobState.QUEUED
    async with listening(hooks, changes):
        await rig.complete(job)
        assert views.get(job.id) is cached  # the stale view is still what memory holds
        event = await rig.queued_event()
    assert event.job_id == job.id and event.type == "video.completed"
