"""The ``JobStore`` contract (``router.store.base``), for SQLite, one Redis and a Redis Cluster.

"local" is the SQLite store with in-process events; the Redis ones share a real server (or a
three-master cluster) with ``RedisJobEvents`` reading what the store's scripts append.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from redis.exceptions import RedisError

from providers.base import InputReference, UpstreamJob, UpstreamStatus
from router.records.event import DELETED, JobChanged
from router.records.job import Attempt, Job, JobState, new_job_id
from router.store.base import IdempotencyClaim, JobStore
from tests.contract.conftest import Backing
from tests.store.test_sqlite import make_job

WITHIN = 5.0


def new_job(owner: str = "alice", created_at: float = 1000.0) -> Job:
    """A queued job with one attempt on provider ``p`` under a fresh upstream id."""
    job = make_job(owner, created_at)
    job.attempts.append(Attempt(provider="p", upstream_id=f"up-{new_job_id()}", submitted_at=1.0))
    return job


def progressed(job: Job, progress: int) -> None:
    job.observe(UpstreamJob(job.current.upstream_id, UpstreamStatus.IN_PROGRESS, progress), 2.0)


async def test_an_inserted_job_reads_back_equal_and_survives_a_new_store(
    backing: Backing,
) -> None:
    store = await backing.reopen()
    job = new_job()
    await store.insert(job)

    again = await (await backing.reopen()).read(job.id)

    assert again is not None and again.to_record() == job.to_record()
    assert await (await backing.reopen()).read("video_missing") is None


async def test_a_job_is_inserted_once(backing: Backing) -> None:
    store = await backing.reopen()
    job = new_job()
    await store.insert(job)

    with pytest.raises(ValueError, match="already stored"):
        await store.insert(job)


async def test_update_stores_only_over_the_version_it_read(backing: Backing) -> None:
    store = await backing.reopen()
    job = new_job()
    await store.insert(job)
    mine = await store.read(job.id)
    theirs = await (await backing.peer()).read(job.id)
    assert mine is not None and theirs is not None

    read_at = mine.version
    progressed(mine, 40)
    assert await store.update(mine, expected_version=read_at)
    progressed(theirs, 70)
    assert not await store.update(theirs, expected_version=read_at)  # a later write never wins

    stored = await store.read(job.id)
    assert stored is not None and stored.progress == 40 and stored.version == mine.version


async def test_of_concurrent_updates_from_one_version_exactly_one_wins(
    backing: Backing,
) -> None:
    first = await backing.reopen()
    job = new_job()
    await first.insert(job)
    stores = [first] + [await backing.peer() for _ in range(3)]
    copies = [await s.read(job.id) for s in stores]
    settled: list[Job] = []
    for number, copy in enumerate(copies):
        assert copy is not None
        copy.fail(f"reason_{number}", "settled by one of four", 3.0)
        settled.append(copy)

    won = await asyncio.gather(
        *(s.update(c, expected_version=job.version) for s, c in zip(stores, settled, strict=True))
    )

    assert won.count(True) == 1
    stored = await first.read(job.id)
    assert stored is not None and stored.state is JobState.FAILED
    assert stored.error_code == f"reason_{won.index(True)}"


async def settled_in(store: JobStore) -> Job:
    """A job inserted into ``store`` and settled failed there (the settling write stored)."""
    job = new_job()
    await store.insert(job)
    settled = await store.read(job.id)
    assert settled is not None
    version = settled.version
    settled.fail("render_failed", "gone", 3.0)
    assert await store.update(settled, expected_version=version)
    return settled


async def test_a_settled_job_takes_no_more_updates(backing: Backing) -> None:
    store = await backing.reopen()
    settled = await settled_in(store)

    version = settled.version
    settled.version += 1  # whatever a caller tries after the settling write
    assert not await store.update(settled, expected_version=version)
    assert not await store.update(new_job(), expected_version=0)  # never stored


async def test_a_settled_job_takes_bookkeeping_over_its_version_and_never_a_new_status(
    backing: Backing,
) -> None:
    store = await backing.reopen()
    settled = await settled_in(store)
    version = settled.version

    settled.copy_failed("upstream link expired")
    assert await store.amend(settled, expected_version=version)
    assert not await store.amend(settled, expected_version=version)  # it moved on
    kept = await (await backing.reopen()).read(settled.id)
    assert kept is not None and kept.copy_tries == 1 and kept.version == settled.version

    kept.state = JobState.COMPLETED
    kept.version += 1
    assert not await store.amend(kept, expected_version=settled.version)
    assert not await store.amend(new_job(), expected_version=0)  # never stored


async def test_many_jobs_read_back_in_order_without_the_missing(backing: Backing) -> None:
    store = await backing.reopen()
    jobs = [new_job(created_at=1000.0 + n) for n in range(3)]
    for job in jobs:
        await store.insert(job)

    found = await store.read_many([jobs[2].id, "video_missing", jobs[0].id])

    assert [j.id for j in found] == [jobs[2].id, jobs[0].id]
    assert await store.read_many([]) == []


async def test_pages_in_both_orders_for_the_owner_only(backing: Backing) -> None:
    store = await backing.reopen()
    jobs = [new_job(created_at=1000.0 + n) for n in range(5)]
    for job in reversed(jobs):
        await store.insert(job)
    await store.insert(new_job(owner="bob", created_at=1002.5))
    ids = [job.id for job in jobs]

    first, more = await store.page("alice", after=None, limit=2, order="asc")
    assert [j.id for j in first] == ids[:2] and more
    rest, more = await store.page("alice", after=ids[1], limit=5, order="asc")
    assert [j.id for j in rest] == ids[2:] and not more
    newest, more = await store.page("alice", after=None, limit=3, order="desc")
    assert [j.id for j in newest] == ids[::-1][:3] and more
    older, more = await store.page("alice", after=ids[2], limit=3, order="desc")
    assert [j.id for j in older] == ids[:2][::-1] and not more
    assert await store.page("bob", after=ids[0], limit=3, order="asc") == ([], False)
    with pytest.raises(ValueError, match="bad page"):
        await store.page("alice", after=None, limit=0, order="asc")


async def test_unsettled_lists_jobs_until_they_settle(backing: Backing) -> None:
    store = await backing.reopen()
    staying, settling = new_job(), new_job()
    await store.insert(staying)
    await store.insert(settling)
    copy = await store.read(settling.id)
    assert copy is not None
    version = copy.version
    copy.fail("render_failed", "gone", 3.0)
    await store.update(copy, expected_version=version)

    found = await (await backing.reopen()).unsettled()

    assert [job.id for job in found] == [staying.id]


async def test_input_references_round_trip(backing: Backing) -> None:
    store = await backing.reopen()
    with_bytes, with_url, without = new_job(), new_job(), new_job()
    image = InputReference(data=b"\x89PNG\x00", filename="a.png", content_type="image/png")
    link = InputReference(data=None, url="https://example.test/a.png")
    await store.insert(with_bytes, image)
    await store.insert(with_url, link)
    await store.insert(without)

    again = await backing.reopen()
    assert await again.input_reference(with_bytes.id) == image
    assert await again.input_reference(with_url.id) == link
    assert await again.input_reference(without.id) is None


async def test_delete_forgets_the_job_everywhere(backing: Backing) -> None:
    store = await backing.reopen()
    job, kept = new_job(), new_job(created_at=2000.0)
    claim = IdempotencyClaim("alice", "key-1", "print")
    await store.claim_key(claim, job.id)
    await store.insert(job, InputReference(data=b"x"), claim)
    await store.insert(kept)

    await store.delete(job.id)
    await store.delete(job.id)  # a second delete is harmless

    assert await store.read(job.id) is None
    assert await store.input_reference(job.id) is None
    assert [j.id for j in (await store.page("alice", after=None, limit=9, order="asc"))[0]] == [
        kept.id
    ]
    assert [j.id for j in await store.unsettled()] == [kept.id]
    assert await store.render_holder("p", job.current.upstream_id) is None
    assert (await store.claim_key(claim, "video_next")).job_id == "video_next"  # key is free


async def test_each_stored_change_is_announced_once(backing: Backing) -> None:
    store = await backing.reopen()
    assert backing.events is not None
    job = new_job()
    async with backing.events.subscribe(job_id=job.id) as heard:
        await store.insert(job)
        copy = await store.read(job.id)
        assert copy is not None
        version = copy.version
        progressed(copy, 50)
        assert await store.update(copy, expected_version=version)
        assert not await store.update(copy, expected_version=version)  # no change: no event
        await store.delete(job.id)

        got = [await asyncio.wait_for(anext(heard), WITHIN) for _ in range(3)]

    assert got == [
        JobChanged(job.id, job.version, "queued", 0),
        JobChanged(job.id, copy.version, "in_progress", 50),
        JobChanged(job.id, copy.version + 1, DELETED, 50),
    ]


async def test_a_settled_jobs_bookkeeping_is_announced(backing: Backing) -> None:
    """A cache of the job's view (a fleet's poll cache) must hear that its copy moved."""
    store = await backing.reopen()
    assert backing.events is not None
    settled = await settled_in(store)
    async with backing.events.subscribe(job_id=settled.id) as heard:
        version = settled.version
        settled.copy_failed("upstream link expired")
        assert await store.amend(settled, expected_version=version)

        got = await asyncio.wait_for(anext(heard), WITHIN)
        if got.version == version:  # a shared stream may still hand over the settling write
            got = await asyncio.wait_for(anext(heard), WITHIN)

    assert got == JobChanged(settled.id, version + 1, "failed", settled.progress)


async def test_one_idempotency_key_is_claimed_once_whoever_asks(backing: Backing) -> None:
    stores = [await backing.peer() for _ in range(4)]
    claim = IdempotencyClaim("alice", "retry-me", "print")
    job_ids = [new_job_id() for _ in stores]

    records = await asyncio.gather(
        *(s.claim_key(claim, job_id) for s, job_id in zip(stores, job_ids, strict=True))
    )

    assert len({record.job_id for record in records}) == 1
    assert records[0].job_id in job_ids and records[0].fingerprint == "print"
    other_owner = await stores[0].claim_key(IdempotencyClaim("bob", "retry-me", "x"), "video_b")
    assert other_owner.job_id == "video_b"  # keys are per owner


async def test_a_released_claim_frees_the_key_for_a_retry(backing: Backing) -> None:
    store = await backing.reopen()
    claim = IdempotencyClaim("alice", "failed-create", "print")
    first = await store.claim_key(claim, "video_first")

    await store.release_key(claim, "video_other")  # not the claimant: nothing happens
    assert (await store.claim_key(claim, "video_second")).job_id == first.job_id
    await store.release_key(claim, first.job_id)

    assert (await store.claim_key(claim, "video_second")).job_id == "video_second"


async def test_an_upstream_render_is_held_by_the_first_job_to_claim_it(
    backing: Backing,
) -> None:
    store = await backing.reopen()
    job = new_job()
    await store.insert(job)  # its attempt's render is claimed with it

    assert await store.render_holder("p", job.current.upstream_id) == job.id
    assert not await store.claim_render("p", job.current.upstream_id, "video_other")
    assert await store.claim_render("p", job.current.upstream_id, job.id)
    assert await store.claim_render("p", "up-new", "video_other")
    assert await store.render_holder("p", "up-new") == "video_other"
    assert await store.render_holder("q", "up-new") is None


async def test_a_store_that_cannot_write_says_so_until_a_write_works_again(
    backing: Backing,
) -> None:
    store = await backing.reopen()
    kept = new_job()
    await store.insert(kept)
    assert store.writable and await store.probe_write()

    async with backing.refusing_writes():
        with pytest.raises((sqlite3.Error, RedisError)):
            await store.insert(new_job())
        assert not store.writable
        assert not await store.probe_write()  # a real write, refused as well
        assert not store.writable
        assert await store.read(kept.id) is not None  # reads go on

    assert await store.probe_write() and store.writable
    await store.insert(new_job())
