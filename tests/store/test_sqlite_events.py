"""SqliteJobStore announces every stored change of a job once (``on_change``)."""

from __future__ import annotations

from pathlib import Path

from providers.base import UpstreamJob, UpstreamStatus
from router.records.event import DELETED, JobChanged
from router.records.job import Attempt
from router.store.sqlite import SqliteJobStore
from tests.store.test_sqlite import make_job


def seen(status: UpstreamStatus, progress: int | None = None) -> UpstreamJob:
    return UpstreamJob(upstream_id="up-1", status=status, progress=progress)


async def test_each_stored_change_is_announced_once(tmp_path: Path) -> None:
    heard: list[JobChanged] = []
    store = SqliteJobStore(tmp_path / "jobs.db", on_change=heard.append)
    await store.open()
    try:
        job = make_job()
        job.attempts.append(Attempt(provider="p", upstream_id="up-1", submitted_at=1.0))
        await store.insert(job)
        store.save(job)  # nothing new: nothing announced
        job.observe(seen(UpstreamStatus.IN_PROGRESS, 30), now=2.0)
        store.save(job)
        store.save(job)
        job.observe(seen(UpstreamStatus.COMPLETED, 100), now=3.0)
        store.save(job)
        store.save(job)  # settled and announced: never again
        await store.delete(job.id)
        store.save(job)  # deleted: not stored, not announced
    finally:
        await store.close()

    assert [(e.status, e.progress) for e in heard] == [
        ("queued", 0),
        ("in_progress", 30),
        ("completed", 100),
        (DELETED, 100),
    ]
    versions = [e.version for e in heard]
    assert versions == sorted(set(versions)) and all(e.id == job.id for e in heard)


async def test_jobs_loaded_at_open_announce_their_next_change(tmp_path: Path) -> None:
    first = SqliteJobStore(tmp_path / "jobs.db")
    await first.open()
    job = make_job()
    job.attempts.append(Attempt(provider="p", upstream_id="up-1", submitted_at=1.0))
    await first.insert(job)
    await first.close()
    heard: list[JobChanged] = []
    second = SqliteJobStore(tmp_path / "jobs.db", on_change=heard.append)
    await second.open()
    try:
        loaded = second.get(job.id)
        assert loaded is not None
        second.save(loaded)
        loaded.observe(seen(UpstreamStatus.IN_PROGRESS, 10), now=2.0)
        second.save(loaded)
    finally:
        await second.close()

    assert heard == [JobChanged.of(loaded)]
