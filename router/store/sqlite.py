"""The job store: every job in memory for reads, one SQLite file for durability.

``JobStore`` is the seam a Redis store plugs into later; ``SqliteJobStore`` is the embedded
default. It owns:

* the in-memory view: every job by id and, per owner, the ``(created_at, id)`` keys in order, so
  ``get`` is O(1) and ``list_owned`` is O(log n + page) and never touches disk; and which job
  holds each upstream render (``job_holding``, O(1)), learnt at ``insert`` and ``save``;
* one SQLite file (WAL, ``synchronous=NORMAL``, schema version in ``PRAGMA user_version``) with
  tables ``jobs`` (``body`` is the JSON of ``Job.to_record()``), ``inputs`` (reference images,
  kept so a job can be re-submitted elsewhere) and ``idempotency`` (a client's
  ``Idempotency-Key`` -> the job it created), used by ONE writer thread;
* the idempotency records in memory too, by ``(owner, key)``: ``idempotency_record`` is O(1).

The writer is a dedicated ``threading.Thread`` woken by a ``threading.Event`` and draining a
``collections.deque``, rather than a single-thread executor: it takes everything queued as one
batch (one transaction, a few multi-row statements), where an executor runs one task per call;
and a deque append is atomic, so a write costs the loop no lock (``queue.Queue`` takes one and
notifies on every put). Under load it waits up to ``COMMIT_GAP`` after a commit before the
next (less once ``FULL_BATCH`` writes wait), so writes pile up into batches: on one busy core
every commit costs thread switches (the sqlite3 module lets go of the GIL around each
statement) that the loop pays for too. Reads (the load at ``open``, input blobs) go through
the same thread: one connection, and a read queued after a write sees it.

Callers can rely on: ``insert`` returns once the batch holding the job committed, so a kill -9
loses no acknowledged job (with ``synchronous=NORMAL`` a power loss may still undo the last
commits); ``save`` snapshots on the calling (loop) thread and returns at once; on disk the
highest ``version`` wins whatever order snapshots land in. A job's ``owner`` and ``created_at``
must not change after ``insert``: they key the owner index.

An idempotency record is written in the same transaction as its job's insert (``insert``'s
``idempotency`` argument), so an acknowledged job and its key are durable together or not at
all. Records live ``IDEMPOTENCY_TTL`` by the store's clock: lookups ignore older ones and
``open`` deletes them; ``delete`` drops a job's records with it.

Every stored change is announced once (``on_change``, a ``JobChanged``; the app hands it to
``router.events.local``): ``insert``, a ``save`` whose job has a version not announced yet, and
``delete``. Saving a job again at the same version announces nothing; a settled job's
announcement is its last (a job never changes after it settles), so only jobs in flight keep
their last announced version in memory.

It must not run SQLite on the event loop, hand a live ``Job`` to the writer thread, or decide
anything about jobs (transitions, who may see them): it keeps what it is given.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from providers.base import InputReference
from router import jsonio
from router.records.event import JobChanged
from router.records.job import Job, JobState
from router.store.base import (
    IDEMPOTENCY_TTL,
    IdempotencyClaim,
    IdempotencyRecord,
    WriteHealth,
    check_page,
)

__all__ = [
    "COMMIT_GAP",
    "FULL_BATCH",
    "SCHEMA_VERSION",
    "JobStore",
    "SqliteJobStore",
]

log = logging.getLogger(__name__)

_MAX_BATCH = 10_000  # bounds how long a flush or blob read waits behind one transaction

# _MIGRATIONS[n] takes a file from schema version n to n + 1; a new file runs them all.
_MIGRATIONS = (
    """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_at REAL NOT NULL,
    finished INTEGER NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_owner_created ON jobs (owner, created_at, id);
CREATE TABLE IF NOT EXISTS inputs (
    job_id TEXT PRIMARY KEY, filename TEXT, content_type TEXT, url TEXT, data BLOB);
""",
    """
CREATE TABLE IF NOT EXISTS idempotency (
    owner TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, job_id TEXT NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (owner, key));
CREATE INDEX IF NOT EXISTS idempotency_job ON idempotency (job_id);
""",
)
SCHEMA_VERSION = len(_MIGRATIONS)


class _Statement:
    """A multi-row insert, ``head VALUES (?, ...), ... tail``; each size's text built once."""

    __slots__ = ("_head", "_row", "_tail", "_texts")

    def __init__(self, head: str, columns: int, tail: str = "") -> None:
        self._head, self._tail = head, tail
        self._row = "(" + ", ".join("?" * columns) + ")"
        self._texts: dict[int, str] = {}

    def text(self, rows: int) -> str:
        text = self._texts.get(rows)
        if text is None:
            text = self._texts[rows] = (
                f"{self._head} VALUES {', '.join([self._row] * rows)}{self._tail}"
            )
        return text


# rows per statement at most; every size up to it is prepared once and cached (32 sizes of
# three statements: about 1 MiB; 128 sizes took 14 MiB)
_CHUNK = 32
_CACHED_STATEMENTS = 3 * _CHUNK + 32  # every size of the three inserts, and the rest
_UPSERT_JOB = _Statement(
    "INSERT INTO jobs (id, owner, created_at, finished, version, body)",
    6,
    # owner and created_at never change, so their index is left alone
    " ON CONFLICT(id) DO UPDATE SET finished = excluded.finished, version = excluded.version,"
    " body = excluded.body WHERE excluded.version >= jobs.version",
)
_UPSERT_INPUT = _Statement("INSERT OR REPLACE INTO inputs", 5)
# REPLACE: an expired record of the same key may still be on disk until the next open
_UPSERT_IDEMPOTENCY = _Statement("INSERT OR REPLACE INTO idempotency", 5)
COMMIT_GAP = 0.005  # seconds from one commit to the next, at most, while writes keep coming
# A gap ends early once this many writes wait: bench/ found 8, 16 and 24 alike per row, while
# waiting out the gap with a full batch left the loop idle (clients waiting on the commit).
FULL_BATCH = 16
_T = TypeVar("_T")
_JobRow = tuple[str, str, float, int, int, bytes]
_InputRow = tuple[str, str, str, str | None, bytes | None]
_Reply = tuple[asyncio.Future[Any], Any, BaseException | None]


_Loaded = tuple[list[Job], list[IdempotencyRecord]]  # what open() reads from the file


class JobStore(WriteHealth, Protocol):
    """The in-process face of the SQLite store that the jobs room calls today: reads from
    memory, live objects, writes made durable behind the caller's back. The shared store
    protocol is ``router.store.base.JobStore`` (async, compare-and-set), which
    ``SqliteJobStore`` implements as well."""

    async def open(self) -> None: ...
    def get(self, job_id: str) -> Job | None: ...
    async def read(self, job_id: str) -> Job | None: ...
    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]: ...
    def list_owned(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]: ...
    def unfinished(self) -> list[Job]: ...
    def idempotency_record(self, owner: str, key: str) -> IdempotencyRecord | None: ...
    def job_holding(self, provider: str, upstream_id: str) -> str | None: ...
    async def insert(
        self,
        job: Job,
        input_reference: InputReference | None = None,
        idempotency: IdempotencyClaim | None = None,
    ) -> None: ...
    def save(self, job: Job) -> None: ...
    async def delete(self, job_id: str) -> None: ...
    async def input_reference(self, job_id: str) -> InputReference | None: ...
    async def flush(self) -> None: ...
    async def close(self) -> None: ...
    def __len__(self) -> int: ...


@dataclass(slots=True)
class _Upsert:
    job: _JobRow
    input: _InputRow | None
    done: asyncio.Future[None] | None  # None for save(): nobody waits
    idempotency: IdempotencyRecord | None = None


@dataclass(slots=True)
class _Call(Generic[_T]):
    fn: Callable[[sqlite3.Connection], _T]  # runs on the writer thread, inside the batch
    done: asyncio.Future[_T]


@dataclass(slots=True)
class _Stop:
    done: asyncio.Future[None]


class SqliteJobStore:
    """The embedded ``JobStore``: a dict in memory, a SQLite file behind one writer thread."""

    __slots__ = (
        "_by_owner",
        "_clock",
        "_commits",
        "_full",
        "_holding",
        "_idempotency",
        "_idempotency_of_job",
        "_jobs",
        "_on_change",
        "_open_versions",
        "_path",
        "_pending",
        "_stopped",
        "_stored",
        "_thread",
        "_wake",
        "_writable",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[JobChanged], None] | None = None,
    ) -> None:
        self._path = Path(path)
        self._clock = clock  # ages idempotency records only
        self._on_change = on_change
        self._open_versions: dict[str, int] = {}  # unsettled job id -> version last announced
        # job id -> (version, status) last handed to the writer: ``amend`` checks against it
        # (callers may change the very object the store keeps)
        self._stored: dict[str, tuple[int, JobState]] = {}
        self._jobs: dict[str, Job] = {}
        self._by_owner: dict[str, list[tuple[float, str]]] = {}  # sorted (created_at, id)
        self._holding: dict[str, dict[str, str]] = {}  # provider -> upstream id -> job id
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}  # by (owner, key)
        self._idempotency_of_job: dict[str, tuple[str, str]] = {}  # job id -> (owner, key)
        self._pending: collections.deque[_Upsert | _Call[Any] | _Stop] = collections.deque()
        self._wake = threading.Event()
        self._full = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._commits = 0
        self._writable = True  # flipped by the writer thread after each commit

    @property
    def commits(self) -> int:
        """Transactions committed so far; group commit keeps this far below the writes."""
        return self._commits

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def writable(self) -> bool:
        return self._writable

    async def probe_write(self) -> bool:
        try:
            await self._call(_probe_write)
        except Exception:  # the failure is the answer (a statement may fail before its commit)
            self._writable = False
        return self._writable

    async def open(self) -> None:
        if self._thread is not None or self._stopped:
            raise RuntimeError("SqliteJobStore can be opened once")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[_Loaded] = loop.create_future()
        idempotency_cutoff = self._clock() - IDEMPOTENCY_TTL
        # daemon: a forgotten close() must not hang interpreter exit; acknowledged writes are
        # already on disk and close() is the clean way out
        thread = threading.Thread(
            target=self._run,
            args=(loop, ready, idempotency_cutoff),
            name="job-store-writer",
            daemon=True,
        )
        thread.start()
        self._thread = thread
        try:
            jobs, records = await ready
        except Exception:
            self._thread = None  # the thread has ended; close() has nothing to stop
            raise
        for job in jobs:
            self._index(job)
            if not job.state.finished:
                self._open_versions[job.id] = job.version
        for record in records:
            self._remember(record)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def list_owned(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]:
        check_page(limit, order)
        keys = self._by_owner.get(owner, [])
        start, end = 0, len(keys)  # the slice of keys the page may come from
        if after is not None:
            anchor = self._jobs.get(after)
            if anchor is None or anchor.owner != owner:  # never reveal whether it exists
                return [], False
            at = bisect.bisect_left(keys, (anchor.created_at, anchor.id))
            if order == "asc":
                start = at + 1
            else:
                end = at
        if order == "asc":
            page, has_more = keys[start : start + limit], start + limit < end
        else:
            page, has_more = keys[max(start, end - limit) : end][::-1], end - limit > start
        return [self._jobs[job_id] for _, job_id in page], has_more

    def unfinished(self) -> list[Job]:
        # a scan, not an index: jobs finish by mutation the store does not see; called at startup
        return [job for job in self._jobs.values() if not job.state.finished]

    def job_holding(self, provider: str, upstream_id: str) -> str | None:
        """The stored job one of whose attempts is ``upstream_id`` on ``provider``, if any."""
        held = self._holding.get(provider)
        return None if held is None else held.get(upstream_id)

    def idempotency_record(self, owner: str, key: str) -> IdempotencyRecord | None:
        """The job ``owner`` created with ``key`` within ``IDEMPOTENCY_TTL``, if any."""
        record = self._idempotency.get((owner, key))
        if record is None or self._clock() - record.created_at >= IDEMPOTENCY_TTL:
            return None
        return record

    async def insert(
        self,
        job: Job,
        input_reference: InputReference | None = None,
        idempotency: IdempotencyClaim | None = None,
    ) -> None:
        """Store ``job`` durably; with a claim, its idempotency record too, in the same
        transaction."""
        if job.id in self._jobs:
            raise ValueError(f"job {job.id} is already stored")
        claim = idempotency
        record: IdempotencyRecord | None = None
        if claim is not None:
            if claim.owner != job.owner:
                raise ValueError(f"job {job.id}: idempotency claim of another owner")
            record = IdempotencyRecord(
                claim.owner, claim.key, claim.fingerprint, job.id, self._clock()
            )
        input_row: _InputRow | None = None
        if (ref := input_reference) is not None:
            input_row = (job.id, ref.filename, ref.content_type, ref.url, ref.data)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Upsert(_job_row(job), input_row, done, record))
        self._index(job)
        if record is not None:
            self._remember(record)
        try:
            await done
        except Exception:
            self._writable = False  # whether at its statement or at the commit, the write failed
            # never acknowledged, so never served; a cancelled caller keeps it (the write goes on)
            if self._jobs.get(job.id) is job:
                self._unindex(job)
            if record is not None:
                self._forget_keys_of(job.id)
            raise
        if self._jobs.get(job.id) is job:  # not deleted while the write was on its way
            self._announce(job, None)

    def save(self, job: Job) -> None:
        if job.id not in self._jobs:
            # deleted meanwhile: writing it would bring the row back at the next start
            log.debug("job store: not saving job %s, it is not stored", job.id)
            return
        self._hold(job)  # an attempt may have gained an upstream id (confirm, re-submission)
        self._stored[job.id] = (job.version, job.state)
        self._put(_Upsert(_job_row(job), None, None))
        last = self._open_versions.get(job.id)
        if last is not None and last != job.version:  # None: settled and announced already
            self._announce(job, last)

    async def delete(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None:
            self._unindex(job)
            self._open_versions.pop(job_id, None)
        self._forget_keys_of(job_id)
        await self._call(lambda conn: _delete_rows(conn, job_id))
        if job is not None and self._on_change is not None:
            self._on_change(JobChanged.deleted(job))

    # --- router.store.base.JobStore: async, compare-and-set, copies out ---

    async def read(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return None if job is None else _copy(job)

    async def read_many(self, job_ids: list[str]) -> list[Job]:
        return [_copy(job) for job_id in job_ids if (job := self._jobs.get(job_id)) is not None]

    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]:
        jobs, more = self.list_owned(owner, after=after, limit=limit, order=order)
        return [_copy(job) for job in jobs], more

    async def unsettled(self) -> list[Job]:
        return [_copy(job) for job in self.unfinished()]

    async def update(self, job: Job, *, expected_version: int) -> bool:
        """Store ``job`` if the stored version is ``expected_version`` and it is unsettled."""
        current = self._jobs.get(job.id)
        # only unsettled jobs have an entry: a settled job's last update was final
        if current is None or self._open_versions.get(job.id) != expected_version:
            return False
        if current is not job:
            self._jobs[job.id] = job  # owner and created_at are the same: the index holds
        self.save(job)
        return True

    async def amend(self, job: Job, *, expected_version: int) -> bool:
        """Store ``job``'s bookkeeping if the stored version is ``expected_version`` and its
        status is the stored one."""
        current = self._jobs.get(job.id)
        if current is None or self._stored.get(job.id) != (expected_version, job.state):
            return False
        if current is not job:
            self._jobs[job.id] = job
        self._hold(job)
        self._stored[job.id] = (job.version, job.state)
        self._put(_Upsert(_job_row(job), None, None))
        if job.id in self._open_versions:  # unsettled: keep update's check on the new version
            self._open_versions[job.id] = job.version
        if self._on_change is not None:
            self._on_change(JobChanged.of(job))
        return True

    async def claim_key(self, claim: IdempotencyClaim, job_id: str) -> IdempotencyRecord:
        record = self.idempotency_record(claim.owner, claim.key)
        if record is None:
            record = IdempotencyRecord(
                claim.owner, claim.key, claim.fingerprint, job_id, self._clock()
            )
            self._remember(record)  # on disk with the job's insert; one process needs no more
        return record

    async def release_key(self, claim: IdempotencyClaim, job_id: str) -> None:
        record = self._idempotency.get((claim.owner, claim.key))
        if record is not None and record.job_id == job_id and job_id not in self._jobs:
            self._forget_keys_of(job_id)

    async def claim_render(self, provider: str, upstream_id: str, job_id: str) -> bool:
        return self._holding.setdefault(provider, {}).setdefault(upstream_id, job_id) == job_id

    async def render_holder(self, provider: str, upstream_id: str) -> str | None:
        return self.job_holding(provider, upstream_id)

    def _announce(self, job: Job, last: int | None) -> None:
        """Tell ``on_change`` about ``job``'s new version; remember it while unsettled."""
        if job.state.finished:
            if last is not None:
                del self._open_versions[job.id]
        else:
            self._open_versions[job.id] = job.version
        if self._on_change is not None:
            self._on_change(JobChanged.of(job))

    async def input_reference(self, job_id: str) -> InputReference | None:
        return await self._call(lambda conn: _read_input(conn, job_id))

    async def flush(self) -> None:
        await self._call(lambda conn: None)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        self._stopped = True
        if thread is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Stop(done))  # after everything queued: close flushes
        self._wake.set()
        self._full.set()  # a shutdown does not wait out a commit gap
        await done
        thread.join()  # it answered as its last act: this wait is momentary

    def _index(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._stored[job.id] = (job.version, job.state)
        self._hold(job)
        key = (job.created_at, job.id)
        keys = self._by_owner.get(job.owner)
        if keys is None:  # not setdefault: that builds a list for every insert
            keys = self._by_owner[job.owner] = []
        if not keys or keys[-1] < key:
            keys.append(key)  # the usual case: the newest job of its owner
        else:
            bisect.insort(keys, key)

    def _unindex(self, job: Job) -> None:
        del self._jobs[job.id]
        del self._stored[job.id]
        for attempt in job.attempts:
            held = self._holding.get(attempt.provider)
            if held is not None and held.get(attempt.upstream_id) == job.id:
                del held[attempt.upstream_id]
        keys = self._by_owner[job.owner]
        del keys[bisect.bisect_left(keys, (job.created_at, job.id))]
        if not keys:
            del self._by_owner[job.owner]

    def _hold(self, job: Job) -> None:
        for attempt in job.attempts:
            if attempt.upstream_id:  # an ``UNKNOWN`` attempt has none yet
                held = self._holding.get(attempt.provider)
                if held is None:
                    held = self._holding[attempt.provider] = {}
                held.setdefault(attempt.upstream_id, job.id)

    def _remember(self, record: IdempotencyRecord) -> None:
        slot = (record.owner, record.key)
        replaced = self._idempotency.get(slot)
        if replaced is not None:  # expired: a key lives again once its record is too old
            self._idempotency_of_job.pop(replaced.job_id, None)
        self._idempotency[slot] = record
        self._idempotency_of_job[record.job_id] = slot

    def _forget_keys_of(self, job_id: str) -> None:
        slot = self._idempotency_of_job.pop(job_id, None)
        if slot is not None:
            del self._idempotency[slot]

    def _put(self, op: _Upsert | _Call[Any]) -> None:
        if self._thread is None:
            raise RuntimeError("the job store is not open")
        self._pending.append(op)
        if len(self._pending) == FULL_BATCH:
            self._full.set()
        if not self._wake.is_set():  # a lock and a notify per batch, not per write
            self._wake.set()

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        done: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._put(_Call(fn, done))
        return await done

    # --- everything below runs on the writer thread ---

    def _run(
        self,
        loop: asyncio.AbstractEventLoop,
        ready: asyncio.Future[_Loaded],
        idempotency_cutoff: float,
    ) -> None:
        try:
            conn, loaded = _open(self._path, idempotency_cutoff)
        except Exception as exc:
            _reply(loop, [(ready, None, exc)])
            return
        _reply(loop, [(ready, loaded, None)])
        with contextlib.closing(conn):
            while True:
                self._wake.wait()
                self._wake.clear()  # before draining: anything appended later sets it again
                while self._pending:
                    count = min(len(self._pending), _MAX_BATCH)
                    ops = [self._pending.popleft() for _ in range(count)]
                    writes = [op for op in ops if not isinstance(op, _Stop)]
                    replies = self._commit(conn, writes) if writes else []
                    stops = [op.done for op in ops if isinstance(op, _Stop)]
                    _reply(loop, replies + [(done, None, None) for done in stops])
                    if stops:
                        return
                    # Group commit: under load writes come every few hundred microseconds,
                    # and a commit each would cost thread switches and a WAL append each;
                    # pausing lets them pile up into the next batch, until FULL_BATCH wait.
                    # A write after a quiet spell still goes at once.
                    self._full.wait(COMMIT_GAP)
                    self._full.clear()

    def _commit(self, conn: sqlite3.Connection, ops: list[_Upsert | _Call[Any]]) -> list[_Reply]:
        """One transaction for the batch, applied in queue order (a delete after a save wins).

        The usual batch goes in a few statements (``_write_rows``); if one of them fails, the
        batch is rolled back and redone op by op, so only the ops that fail on their own do.
        """
        try:
            try:
                replies = _apply(conn, ops, isolated=False)
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                replies = _apply(conn, ops, isolated=True)
        except Exception as exc:  # the commit itself failed (disk full, I/O): the whole batch did
            # inserts in it fail; its saves reach disk with each job's next save
            if self._writable:
                log.exception("job store: a batch of %d writes failed", len(ops))
            self._writable = False
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a broken connection: next batch retries
                    conn.execute("ROLLBACK")
            return [(op.done, None, exc) for op in ops if op.done is not None]
        self._commits += 1
        if any(exc is not None for _, _, exc in replies):  # ops that failed alone
            self._writable = False
        elif not self._writable:
            log.warning("job store: writes succeed again")
            self._writable = True
        return replies


def _copy(job: Job) -> Job:
    """A copy the caller may change without touching the stored job (nor its served body)."""
    return dataclasses.replace(
        job, attempts=[dataclasses.replace(a) for a in job.attempts], served=None
    )


def _job_row(job: Job) -> _JobRow:
    """The snapshot, taken on the caller's thread: the writer never sees a live ``Job``."""
    body = jsonio.dumps(job.to_record())
    return (job.id, job.owner, job.created_at, int(job.state.finished), job.version, body)


def _probe_write(conn: sqlite3.Connection) -> None:
    """A write that must reach the file: the probe row changes every time."""
    conn.execute("CREATE TABLE IF NOT EXISTS write_probe (at REAL NOT NULL)")
    conn.execute("DELETE FROM write_probe")
    conn.execute("INSERT INTO write_probe VALUES (?)", (time.time(),))


def _open(path: Path, idempotency_cutoff: float) -> tuple[sqlite3.Connection, _Loaded]:
    """Connect, create or migrate the schema, delete idempotency records from
    ``idempotency_cutoff`` or before, and load every job and the remaining records (on the
    writer thread)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # we issue BEGIN/COMMIT per batch
    conn = sqlite3.connect(path, isolation_level=None, cached_statements=_CACHED_STATEMENTS)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # in WAL mode NORMAL syncs at checkpoints, not per commit: a crashed process loses
        # nothing committed, a power cut may lose the last commits
        conn.execute("PRAGMA synchronous=NORMAL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{path}: schema version {version} is newer than this code")
        if version < SCHEMA_VERSION:
            steps = "".join(_MIGRATIONS[version:])
            conn.executescript(f"BEGIN; {steps} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        conn.execute("DELETE FROM idempotency WHERE created_at <= ?", (idempotency_cutoff,))
        rows = conn.execute("SELECT body FROM jobs").fetchall()
        jobs = [Job.from_record(jsonio.loads(body)) for (body,) in rows]
        records = [
            IdempotencyRecord(*row)
            for row in conn.execute(
                "SELECT owner, key, fingerprint, job_id, created_at FROM idempotency"
            )
        ]
        return conn, (jobs, records)
    except BaseException:
        conn.close()
        raise


def _apply(
    conn: sqlite3.Connection, ops: list[_Upsert | _Call[Any]], *, isolated: bool
) -> list[_Reply]:
    """Run ``ops`` in one transaction and commit it; their replies.

    Runs of upserts between calls are written together. ``isolated`` gives every upsert and
    call its own savepoint, so a failing one fails alone; otherwise a failing upsert raises
    ``sqlite3.Error`` and the caller rolls back (a failing call fails alone either way).
    """
    upserts = [op for op in ops if isinstance(op, _Upsert)]
    if not isolated and len(upserts) == len(ops) <= _CHUNK and all(map(_plain, upserts)):
        _write_rows(conn, upserts)  # one statement: its own transaction
        return [(op.done, None, None) for op in upserts if op.done is not None]
    replies: list[_Reply] = []
    conn.execute("BEGIN")
    run: list[_Upsert] = []
    for op in ops:
        if isinstance(op, _Upsert):
            run.append(op)
            continue
        _write_run(conn, run, replies, isolated)
        run = []
        try:
            result = _savepoint(conn, functools.partial(op.fn, conn))
        except Exception as exc:
            replies.append((op.done, None, exc))
        else:
            replies.append((op.done, result, None))
    _write_run(conn, run, replies, isolated)
    conn.execute("COMMIT")
    return replies


def _plain(op: _Upsert) -> bool:
    """A job row and nothing else: a batch of these is one statement."""
    return op.input is None and op.idempotency is None


def _savepoint(conn: sqlite3.Connection, fn: Callable[[], _T]) -> _T:
    """Run ``fn`` so that, if it raises, none of its statements stay in the transaction."""
    conn.execute("SAVEPOINT op")
    try:
        return fn()
    except BaseException:
        conn.execute("ROLLBACK TO op")
        raise
    finally:
        conn.execute("RELEASE op")


def _write_run(
    conn: sqlite3.Connection, run: list[_Upsert], replies: list[_Reply], isolated: bool
) -> None:
    if not run:
        return
    failed: dict[int, sqlite3.Error] = {}  # id(op) -> why its row could not be written
    if not isolated:
        _write_rows(conn, run)
    else:
        for op in run:
            try:
                _savepoint(conn, functools.partial(_write_rows, conn, [op]))
            except sqlite3.Error as exc:
                log.error("job store: writing job %s failed: %r", op.job[0], exc)
                failed[id(op)] = exc
    replies.extend((op.done, None, failed.get(id(op))) for op in run if op.done is not None)


def _write_rows(conn: sqlite3.Connection, run: list[_Upsert]) -> None:
    """Upsert the rows of ``run`` with as few statements as possible.

    The sqlite3 module lets go of the GIL around every statement step, and with the loop
    thread busy each let-go is a thread switch: ``executemany`` would pay one per row, a
    multi-row ``VALUES`` pays one per statement (each size's text stays in the connection's
    statement cache).
    """
    jobs: dict[str, _JobRow] = {}
    for op in run:  # several snapshots of one job in a batch: the newest is enough
        known = jobs.get(op.job[0])
        if known is None or known[4] <= op.job[4]:
            jobs[op.job[0]] = op.job
    _insert_rows(conn, _UPSERT_JOB, list(jobs.values()))
    _insert_rows(conn, _UPSERT_INPUT, [op.input for op in run if op.input is not None])
    _insert_rows(
        conn,
        _UPSERT_IDEMPOTENCY,
        [op.idempotency.row() for op in run if op.idempotency is not None],
    )


def _insert_rows(
    conn: sqlite3.Connection, statement: _Statement, rows: Sequence[tuple[Any, ...]]
) -> None:
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(statement.text(len(chunk)), [value for row in chunk for value in row])


def _delete_rows(conn: sqlite3.Connection, job_id: str) -> None:
    conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
    conn.execute("DELETE FROM inputs WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM idempotency WHERE job_id = ?", (job_id,))


def _read_input(conn: sqlite3.Connection, job_id: str) -> InputReference | None:
    row = conn.execute(
        "SELECT filename, content_type, url, data FROM inputs WHERE job_id = ?", (job_id,)
    ).fetchone()
    if row is None:
        return None
    filename, content_type, url, data = row
    return InputReference(data=data, filename=filename, content_type=content_type, url=url)


def _reply(loop: asyncio.AbstractEventLoop, replies: list[_Reply]) -> None:
    """Hand results to the loop in one wake-up per batch, not one per future."""
    if not replies:
        return
    try:
        loop.call_soon_threadsafe(_settle, replies)
    except RuntimeError:  # the loop closed without close(): nobody is left waiting
        log.warning("job store: event loop closed, %d replies dropped", len(replies))


def _settle(replies: list[_Reply]) -> None:
    for done, result, exc in replies:
        if done.done():  # its awaiter was cancelled; the write happened regardless
            continue
        if exc is None:
            done.set_result(result)
        else:
            done.set_exception(exc)
