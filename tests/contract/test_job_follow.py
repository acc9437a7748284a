"""``follow`` (router.jobs.follow, what ``GET /v1/videos/{id}/events`` streams) over each store
and its job events: an instance that only listens follows a job another instance writes, from
queued through rising progress to completed; a resume after a version misses no change; the
stream ends on deletion and beats while nothing changes. On Redis and the Cluster the writer
and the follower are separate connections, as two instances of a fleet are."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from providers.base import UpstreamJob, UpstreamStatus
from router.events.base import JobEvents
from router.jobs.follow import follow
from router.records.job import Job, JobState
from router.store.base import JobStore
from tests.contract.conftest import Backing
from tests.contract.test_job_store import new_job, progressed

WITHIN = 10.0  # seconds the whole stream may take on a busy machine


async def started(backing: Backing) -> tuple[JobStore, Job, JobStore, JobEvents]:
    """The writing instance's store with a new job in it, and the follower's own store
    connection and the job events it hears."""
    writer = await backing.reopen()
    job = new_job()
    await writer.insert(job)
    assert backing.events is not None
    return writer, job, await backing.peer(), backing.events


async def collect(states: AsyncGenerator[Job | None, None], count: int) -> list[Job | None]:
    async def take() -> list[Job | None]:
        return [await anext(states) for _ in range(count)]

    return await asyncio.wait_for(take(), WITHIN)


async def write(store: JobStore, job: Job, change: str) -> None:
    """One change of ``job`` stored by the instance polling it."""
    version = job.version
    if change == "completed":
        job.observe(UpstreamJob(job.current.upstream_id, UpstreamStatus.COMPLETED, 100), 3.0)
    else:
        progressed(job, int(change))
    assert await store.update(job, expected_version=version)


async def test_a_listener_follows_a_job_another_instance_writes_to_its_end(
    backing: Backing,
) -> None:
    writer, job, reader, events = await started(backing)
    states = follow(job.id, reader, events, after=-1, quiet=WITHIN)
    (first,) = await collect(states, 1)
    assert first is not None and first.state is JobState.QUEUED
    seen = [first]
    for change in ("10", "40", "70", "completed"):
        await write(writer, job, change)
        (state,) = await collect(states, 1)
        assert state is not None
        seen.append(state)
    assert await collect_rest(states) == []  # settled: the stream ends
    assert [s.state for s in seen] == [JobState.QUEUED] + [JobState.IN_PROGRESS] * 3 + [
        JobState.COMPLETED
    ]
    assert [s.progress for s in seen] == [0, 10, 40, 70, 100]
    versions = [s.version for s in seen]
    assert versions == sorted(versions) and len(set(versions)) == 5


async def collect_rest(states: AsyncGenerator[Job | None, None]) -> list[Job | None]:
    async def drain() -> list[Job | None]:
        return [state async for state in states]

    return await asyncio.wait_for(drain(), WITHIN)


async def test_a_resume_after_a_version_sends_only_what_is_newer(backing: Backing) -> None:
    writer, job, reader, events = await started(backing)
    await write(writer, job, "20")
    seen_version = job.version
    await write(writer, job, "60")  # changed while the client was away
    states = follow(job.id, reader, events, after=seen_version, quiet=WITHIN)
    (current,) = await collect(states, 1)
    assert current is not None and current.progress == 60  # at once: the state it missed
    await write(writer, job, "completed")
    (final,) = await collect(states, 1)
    assert final is not None and final.state is JobState.COMPLETED
    assert await collect_rest(states) == []
    # a client that has the final state already gets nothing and the stream ends
    done = follow(job.id, reader, events, after=final.version, quiet=WITHIN)
    assert await collect_rest(done) == []


async def test_a_quiet_job_gets_heartbeats_and_a_deleted_one_ends_the_stream(
    backing: Backing,
) -> None:
    writer, job, reader, events = await started(backing)
    states = follow(job.id, reader, events, after=job.version, quiet=0.05)
    assert await collect(states, 2) == [None, None]  # nothing new: beats only
    await writer.delete(job.id)

    async def until_the_end() -> None:
        async for state in states:
            assert state is None  # heartbeats until the deletion is heard, then the end

    await asyncio.wait_for(until_the_end(), WITHIN)
    gone = follow(job.id, reader, events, after=-1, quiet=WITHIN)
    assert await collect_rest(gone) == []
