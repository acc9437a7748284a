"""SqliteJobStore against real SQLite files: durability, versions, paging, group commit."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from providers.base import InputReference
from router.records.job import Attempt, AttemptState, Job, JobState, new_job_id
from router.store import sqlite as store_module
from router.store.sqlite import FULL_BATCH, SCHEMA_VERSION, JobStore, SqliteJobStore

REPO = Path(__file__).resolve().parents[2]


def make_job(owner: str = "alice", created_at: float = 1000.0, job_id: str | None = None) -> Job:
    return Job(
        id=job_id or new_job_id(),
        owner=owner,
        model="sora-2",
        prompt="a cat on a skateboard",
        size="1280x720",
        seconds=4,
        created_at=created_at,
    )


async def opened(path: Path) -> SqliteJobStore:
    store = SqliteJobStore(path)
    await store.open()
    return store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "jobs.sqlite3"  # parents are created by open()


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqliteJobStore]:
    store = await opened(db)
    yield store
    await store.close()


async def test_inserted_job_is_found_by_a_new_store_on_the_same_file(
    store: SqliteJobStore, db: Path
) -> None:
    job = make_job()
    await store.insert(job)
    assert store.get(job.id) is job and len(store) == 1

    again = await opened(db)  # while the first is still open: the insert was committed
    try:
        loaded = again.get(job.id)
        assert loaded is not None and loaded.to_record() == job.to_record()
    finally:
        await again.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()


async def test_the_store_satisfies_the_protocol(db: Path) -> None:
    store: JobStore = SqliteJobStore(db)
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError):
        await store.insert(make_job())


async def test_a_newer_save_wins_and_an_older_snapshot_never_overwrites_it(
    store: SqliteJobStore, db: Path
) -> None:
    job = make_job()
    await store.insert(job)
    stale = Job.from_record(job.to_record())  # version 0
    assert job.transition(JobState.QUEUED, JobState.IN_PROGRESS)
    assert job.advance_progress(40)
    store.save(job)  # version 2, snapshotted now
    job.advance_progress(50)  # a later change without a save stays out of the file
    await store.flush()
    store.save(stale)  # arrives later, in its own batch
    await store.flush()

    again = await opened(db)
    try:
        loaded = again.get(job.id)
        assert loaded is not None
        assert (loaded.version, loaded.state, loaded.progress) == (2, JobState.IN_PROGRESS, 40)
    finally:
        await again.close()


async def test_a_stale_snapshot_in_the_same_batch_loses_too(
    store: SqliteJobStore, db: Path
) -> None:
    job = make_job()
    await store.insert(job)
    stale = Job.from_record(job.to_record())
    job.advance_progress(10)
    store.save(job)
    store.save(stale)
    await store.close()
    again = await opened(db)
    loaded = again.get(job.id)
    await again.close()
    assert loaded is not None and loaded.progress == 10


async def test_list_owned_pages_in_both_orders(store: SqliteJobStore) -> None:
    # two jobs share a created_at: the id breaks the tie
    jobs = [make_job(created_at=t, job_id=f"video_{i:02d}") for i, t in enumerate([1, 2, 2, 3, 4])]
    for job in reversed(jobs):  # insertion order must not matter
        await store.insert(job)
    ids = [job.id for job in jobs]

    def page(after: str | None, limit: int, order: str) -> tuple[list[str], bool]:
        found, more = store.list_owned("alice", after=after, limit=limit, order=order)
        return [job.id for job in found], more

    assert page(None, 10, "asc") == (ids, False)
    assert page(None, 10, "desc") == (ids[::-1], False)
    assert page(None, 2, "asc") == (ids[:2], True)
    assert page(ids[1], 2, "asc") == (ids[2:4], True)
    assert page(ids[3], 2, "asc") == (ids[4:], False)
    assert page(None, 2, "desc") == ([ids[4], ids[3]], True)
    assert page(ids[3], 2, "desc") == ([ids[2], ids[1]], True)
    assert page(ids[1], 2, "desc") == ([ids[0]], False)
    assert page(ids[0], 2, "desc") == ([], False)
    assert page(None, 5, "asc") == (ids, False)
    with pytest.raises(ValueError, match="bad page"):
        store.list_owned("alice", after=None, limit=0, order="asc")
    with pytest.raises(ValueError, match="bad page"):
        store.list_owned("alice", after=None, limit=1, order="sideways")


async def test_list_owned_never_shows_another_owners_jobs(store: SqliteJobStore) -> None:
    mine = [make_job("alice", created_at=t) for t in (1, 3)]
    theirs = [make_job("bob", created_at=t) for t in (2, 4)]
    for job in mine + theirs:
        await store.insert(job)

    page, more = store.list_owned("alice", after=None, limit=10, order="asc")
    assert page == mine and not more
    assert store.list_owned("alice", after=theirs[0].id, limit=10, order="asc") == ([], False)
    assert store.list_owned("alice", after="video_unknown", limit=10, order="desc") == ([], False)
    assert store.list_owned("carol", after=None, limit=10, order="desc") == ([], False)


async def test_unfinished_lists_only_jobs_not_finished(store: SqliteJobStore, db: Path) -> None:
    queued, running, done, failed = (make_job() for _ in range(4))
    running.transition(JobState.QUEUED, JobState.IN_PROGRESS)
    done.transition(JobState.QUEUED, JobState.COMPLETED)
    failed.transition(JobState.QUEUED, JobState.FAILED)
    for job in (queued, running, done, failed):
        await store.insert(job)
    assert {job.id for job in store.unfinished()} == {queued.id, running.id}

    await store.close()
    again = await opened(db)
    assert {job.id for job in again.unfinished()} == {queued.id, running.id}
    assert len(again) == 4
    await again.close()


async def test_input_reference_round_trips_bytes_and_urls(store: SqliteJobStore, db: Path) -> None:
    upload = InputReference(
        data=b"\x89PNG\x00\xff" * 100, filename="a.png", content_type="image/png"
    )
    link = InputReference(url="https://example.com/first-frame.jpg", content_type="image/jpeg")
    with_upload, with_link, without = make_job(), make_job(), make_job()
    await store.insert(with_upload, upload)
    await store.insert(with_link, link)
    await store.insert(without)

    assert await store.input_reference(with_upload.id) == upload
    assert await store.input_reference(with_link.id) == link
    assert await store.input_reference(without.id) is None
    await store.close()
    again = await opened(db)
    assert await again.input_reference(with_upload.id) == upload
    await again.close()


async def test_delete_removes_the_job_and_its_input_durably(
    store: SqliteJobStore, db: Path
) -> None:
    gone, kept = make_job(created_at=1), make_job(created_at=2)
    await store.insert(gone, InputReference(data=b"frame"))
    await store.insert(kept)
    await store.delete(gone.id)
    store.save(gone)  # a late poller save must not bring it back

    assert store.get(gone.id) is None and len(store) == 1
    assert store.list_owned("alice", after=None, limit=10, order="asc") == ([kept], False)
    assert await store.input_reference(gone.id) is None
    await store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM jobs").fetchall() == [(kept.id,)]
        assert conn.execute("SELECT count(*) FROM inputs").fetchone() == (0,)
    conn.close()


async def test_job_holding_names_the_job_of_each_upstream_render(
    store: SqliteJobStore, db: Path
) -> None:
    placed, unanswered, gone = make_job(), make_job(), make_job()
    placed.attempts.append(Attempt(provider="a", upstream_id="up-1", submitted_at=1.0))
    unanswered.attempts.append(
        Attempt(provider="a", upstream_id="", state=AttemptState.UNKNOWN, submitted_at=1.0)
    )
    gone.attempts.append(Attempt(provider="b", upstream_id="up-1", submitted_at=1.0))
    for job in (placed, unanswered, gone):
        await store.insert(job)
    assert store.job_holding("a", "up-1") == placed.id
    assert store.job_holding("b", "up-1") == gone.id  # ids are per provider
    assert store.job_holding("a", "up-2") is None and store.job_holding("c", "up-1") is None

    assert unanswered.confirm("up-2")  # found upstream by reconciliation
    store.save(unanswered)
    await store.delete(gone.id)
    assert store.job_holding("a", "up-2") == unanswered.id
    assert store.job_holding("b", "up-1") is None

    await store.close()
    again = await opened(db)
    assert (again.job_holding("a", "up-1"), again.job_holding("a", "up-2")) == (
        placed.id,
        unanswered.id,
    )
    assert again.job_holding("b", "up-1") is None
    await again.close()


async def test_concurrent_inserts_share_a_few_transactions(store: SqliteJobStore, db: Path) -> None:
    jobs = [make_job(owner=f"key{i % 7}", created_at=float(i)) for i in range(1000)]
    before = store.commits
    await asyncio.gather(*(store.insert(job) for job in jobs))
    commits = store.commits - before
    assert 1 <= commits < 50, commits

    for job in jobs:
        job.advance_progress(5)
        store.save(job)
    await store.flush()
    await store.close()
    again = await opened(db)
    assert len(again) == 1000
    assert all(again.get(job.id).progress == 5 for job in jobs)  # type: ignore[union-attr]
    await again.close()


async def test_a_full_batch_does_not_wait_out_the_commit_gap(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A gap far beyond the test's timeout: the inserts return only if a full batch ends it.
    monkeypatch.setattr(store_module, "COMMIT_GAP", 3600.0)
    store = await opened(db)
    await store.insert(make_job(created_at=0.0))  # after a quiet spell: at once; a gap follows
    before = store.commits
    batch = [make_job(created_at=float(i)) for i in range(1, FULL_BATCH + 1)]
    await asyncio.wait_for(asyncio.gather(*(store.insert(job) for job in batch)), timeout=30)
    assert store.commits - before == 1  # the gap still gathered them into one transaction
    await asyncio.wait_for(store.close(), timeout=30)  # nor does closing wait the gap out
    again = await opened(db)
    assert len(again) == FULL_BATCH + 1
    await again.close()


async def test_one_failing_job_does_not_sink_its_batch(store: SqliteJobStore, db: Path) -> None:
    good = [make_job() for _ in range(5)]
    bad = make_job(owner=None)  # type: ignore[arg-type]  # violates jobs.owner NOT NULL
    results = await asyncio.gather(
        *(store.insert(job) for job in [*good[:2], bad, *good[2:]]), return_exceptions=True
    )
    assert isinstance(results[2], sqlite3.IntegrityError)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 5
    assert store.get(bad.id) is None  # never acknowledged, so never served

    await store.close()
    again = await opened(db)
    assert sorted(job.id for job in again.unfinished()) == sorted(job.id for job in good)
    await again.close()


CHILD = """
import asyncio, sys
from router.records.job import Job
from router.store.sqlite import SqliteJobStore

async def main() -> None:
    store = SqliteJobStore(sys.argv[1])
    await store.open()
    jobs = [
        Job(id=f"video_{i:04d}", owner="k", model="sora-2", prompt="p", size="1280x720",
            seconds=4, created_at=float(i))
        for i in range(int(sys.argv[2]))
    ]
    await asyncio.gather(*(store.insert(job) for job in jobs))
    print("ok", flush=True)
    while True:  # keep the writer busy so the kill lands mid-write
        for job in jobs:
            job.advance_progress(job.progress + 1)
            store.save(job)
        await asyncio.sleep(0)

asyncio.run(main())
"""


async def test_acknowledged_inserts_survive_sigkill(tmp_path: Path) -> None:
    db, count = tmp_path / "jobs.sqlite3", 300
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", textwrap.dedent(CHILD), str(db), str(count),
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=10)
        assert line == b"ok\n"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    again = await opened(db)
    try:
        assert len(again) == count
        assert all(again.get(f"video_{i:04d}") is not None for i in range(count))
    finally:
        await again.close()


async def test_a_file_from_newer_code_is_refused(db: Path) -> None:
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    store = SqliteJobStore(db)
    with pytest.raises(RuntimeError, match="newer"):
        await store.open()
    await store.close()  # nothing to stop: the writer thread already ended
