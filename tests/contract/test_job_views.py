"""``JobViews`` (router.jobs.views) over each store with its events: client polls answered
from memory, kept current by the events of writes made anywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from router.events.base import DEFAULT_LIMIT
from router.events.local import LocalJobEvents
from router.jobs.views import JobViews
from router.records.event import JobChanged
from router.records.job import Job
from router.store.sqlite import SqliteJobStore
from tests.conftest import wait_for
from tests.contract.conftest import Backing
from tests.contract.test_job_store import new_job, progressed

ViewsFactory = Callable[..., Awaitable[JobViews]]


@pytest.fixture
async def make_views(backing: Backing) -> AsyncIterator[ViewsFactory]:
    started: list[JobViews] = []

    async def make(size: int = 100) -> JobViews:
        store = await backing.reopen()
        assert backing.events is not None
        views = JobViews(store, backing.events, size=size)
        await views.start()
        started.append(views)
        return views

    yield make
    for views in started:
        await views.close()


async def stored(backing: Backing) -> Job:
    job = new_job()
    await (await backing.peer()).insert(job)
    return job


async def test_a_miss_reads_the_store_then_answers_from_memory(
    backing: Backing, make_views: ViewsFactory
) -> None:
    views = await make_views()
    job = await stored(backing)

    assert views.get(job.id) is None
    read = await views.read(job.id)
    assert read is not None and read.to_record() == job.to_record()
    assert views.get(job.id) is read
    assert await views.read("video_missing") is None


async def test_a_change_stored_anywhere_replaces_the_cached_view(
    backing: Backing, make_views: ViewsFactory
) -> None:
    views = await make_views()
    job = await stored(backing)
    await views.read(job.id)
    elsewhere = await backing.peer()
    copy = await elsewhere.read(job.id)
    assert copy is not None
    version = copy.version
    progressed(copy, 60)
    assert await elsewhere.update(copy, expected_version=version)

    async def dropped() -> bool:
        return views.get(job.id) is None

    await wait_for(dropped)
    fresh = await views.read(job.id)
    assert fresh is not None and fresh.progress == 60


async def test_a_deleted_job_leaves_the_cache(backing: Backing, make_views: ViewsFactory) -> None:
    views = await make_views()
    job = await stored(backing)
    await views.read(job.id)

    await (await backing.peer()).delete(job.id)

    async def dropped() -> bool:
        return views.get(job.id) is None

    await wait_for(dropped)
    assert await views.read(job.id) is None


async def test_the_cache_keeps_the_most_recently_polled_jobs(
    backing: Backing, make_views: ViewsFactory
) -> None:
    views = await make_views(size=2)
    first, second, third = [await stored(backing) for _ in range(3)]
    await views.read(first.id)
    await views.read(second.id)
    views.get(first.id)  # polled again: the second is now the oldest

    await views.read(third.id)

    assert len(views) == 2
    assert views.get(second.id) is None
    assert views.get(first.id) is not None and views.get(third.id) is not None


async def test_a_lagging_subscription_empties_the_cache_and_listens_again(
    tmp_path: Path,
) -> None:
    events = LocalJobEvents()
    store = SqliteJobStore(tmp_path / "jobs.db", on_change=events.deliver)
    await store.open()
    views = JobViews(store, events, size=10)
    await views.start()
    try:
        job = new_job()
        await store.insert(job)
        await views.read(job.id)
        for number in range(DEFAULT_LIMIT + 1):  # all at once: the listener cannot keep up
            events.deliver(JobChanged(f"video_{number}", 1, "queued", 0))

        async def emptied() -> bool:
            return len(views) == 0

        await wait_for(emptied)
        await views.read(job.id)
        copy = await store.read(job.id)
        assert copy is not None
        version = copy.version
        progressed(copy, 30)
        assert await store.update(copy, expected_version=version)

        async def dropped() -> bool:  # listening again
            return views.get(job.id) is None

        await wait_for(dropped)
    finally:
        await views.close()
        await store.close()
