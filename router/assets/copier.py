"""Copy on completion: every completed job's output streamed into the asset store.

``submit`` (the poller's completion hook) queues a job; ``copy_concurrency`` workers take
jobs off the queue, so copies run in the background, bounded, and never on a client's request.
Each variant the rendering provider has (video, then thumbnail and sprite sheet) is streamed
from the adapter's ``open_content`` through a shared bandwidth limit (``copy_bandwidth``
bytes a second across all copies), hashed (SHA-256) and counted on the way, and checked against
the upstream's ``Content-Length``. The job records each whole variant (``Job.add_stored``)
as soon as it is stored, so content answers switch to the store variant by variant; once all
are in, the copy is ``STORED`` and the job's ``expires_at`` becomes our copy's (now plus
``assets.retention``, or none).

A try that fails is retried with doubling waits (``copy_retry_base``, at most 5 minutes) until
the upstream's link expires (``upstream_expires_at``, or ``copy_window`` after completion when
the upstream gives none); then the copy is ``LOST`` (a metric, a warning, and the job's
``copy_error`` in the admin view). Variants the upstream does not have (the relay kind's
images) are made from the stored MP4 by ``router.assets.thumbnails``; a failure there is
logged and counted but does not fail the copy.

Restart safety: a copy in flight when the process dies is still ``PENDING`` (or not begun) in
the job store, and ``resume`` queues it again at start; the backend never shows half-written
objects. Every write to the job is ``JobStore.amend`` over the version the copier last read or
wrote (the job has settled, so only its bookkeeping moves); a job deleted or changed elsewhere
meanwhile ends the try (``JobChanged``), and a failed try re-reads the job before it records
the failure.

In a fleet exactly one instance copies a job: a worker first takes the job's lease
(``copy:<job id>`` on the ``Leases`` seam, ``router.fleet``; in Redis with ``store.backend:
redis``) for ``assets.copy_lease`` seconds, renews it every third of that while the copy runs,
and releases it when the copy ends. An instance that finds the lease held looks again once it
could have lapsed: by then the holder has finished (the job's copy is whole, or the objects are
in the shared asset store and are adopted: hashed from the store, never fetched again from the
upstream) or it has died and its lease lapsed, and this instance takes the copy over. A copy
whose lease cannot be renewed stops at once, since another instance may have taken it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path

import aiohttp
from redis.exceptions import RedisError

from monitoring.metrics import Metrics
from providers.base import ContentStream, ProviderError, Rejected
from router.assets.base import CONTENT_TYPES, AssetStore, AssetStoreError, asset_key
from router.assets.throttle import Throttle
from router.assets.thumbnails import GENERATED, Thumbnailer, ThumbnailFailed
from router.config.model import AssetsConfig
from router.fleet.bus import raise_if_cancelling
from router.fleet.leases import Leases
from router.records.job import CopyState, Job, StoredAsset
from router.routing.pool import ProviderPool
from router.store.base import JobStore

log = logging.getLogger(__name__)

MAX_RETRY_WAIT = 300.0
_FILE_CHUNK = 256 * 1024


class CopyMismatch(Exception):
    """The body was not as long as the upstream said."""


class JobChanged(AssetStoreError):
    """The job was deleted or changed by another writer during the copy."""


class LeaseLost(Exception):
    """This instance no longer holds the copy's lease: the copy stopped, it did not fail."""


def lease_name(job_id: str) -> str:
    """The lease whose holder copies ``job_id``."""
    return f"copy:{job_id}"


# what a failed try can raise: the upstream, the connection mid-body, the backend, the disk
_COPY_FAILURES = (
    ProviderError, aiohttp.ClientError, TimeoutError, AssetStoreError, OSError, CopyMismatch,
    RedisError,  # the fleet's job store
)  # fmt: skip


class AssetCopier:
    """Background copies of completed jobs' output into the asset store."""

    def __init__(
        self,
        *,
        assets: AssetStore,
        jobs: JobStore,
        pool: ProviderPool,
        config: AssetsConfig,
        metrics: Metrics,
        clock: Callable[[], float],
        thumbnailer: Thumbnailer | None,
        leases: Leases,
        on_stored: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._assets = assets
        self._leases = leases
        self._jobs = jobs
        self._pool = pool
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._thumbnailer = thumbnailer
        self._on_stored = on_stored  # retention: the bytes a copy added
        self._throttle = Throttle(config.copy_bandwidth)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._versions: dict[str, int] = {}  # job id -> version last read or written here
        self._random = random.Random()

    @property
    def waiting(self) -> int:
        """Copies queued or waiting to be retried."""
        return len(self._queued) + len(self._retries)

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"asset-copy-{n}")
            for n in range(self._config.copy_concurrency)
        ]

    async def stop(self) -> None:
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []

    def submit(self, job: Job) -> None:
        """Copy ``job``'s output, if it completed and has no whole copy yet (and copies are on)."""
        if not self._config.copy or not job.copy_needed() or job.id in self._queued:
            return
        self._queued.add(job.id)
        self._queue.put_nowait(job.id)

    def resume(self, jobs: Iterable[Job]) -> None:
        """Queue again the copies a previous run left unfinished."""
        for job in jobs:
            self.submit(job)

    async def _work(self) -> None:
        while True:
            raise_if_cancelling()  # a cancel redis-py swallowed without an error
            job_id = await self._queue.get()
            self._queued.discard(job_id)
            if not await self._pending(job_id):
                continue
            lease = lease_name(job_id)
            if not await self._lease(self._acquire, lease):
                # another instance copies it: look again once its lease could have lapsed
                self._later(job_id, self._config.copy_lease)
                continue
            try:
                job = await self._jobs.read(job_id)  # as it is now that the copy is ours
                if job is None or not job.copy_needed():
                    continue  # deleted, or copied meanwhile
                self._versions[job_id] = job.version
                await self._copy_holding(job, lease)
            except LeaseLost:
                log.warning("job %s: copy stopped, its lease was lost", job_id)
                self._later(job_id, self._config.copy_lease)
            except _COPY_FAILURES as exc:
                raise_if_cancelling()  # a cancel redis-py turned into an error: stop
                await self._failed(job_id, exc)
            except Exception as exc:  # a bug must not end the worker: count it as a failed try
                raise_if_cancelling()
                log.exception("job %s: copy failed unexpectedly", job_id)
                await self._failed(job_id, exc)
            finally:
                self._versions.pop(job_id, None)
                await self._lease(self._leases.release, lease)

    async def _pending(self, job_id: str) -> bool:
        """Mark ``job_id``'s copy pending (the admin view shows it is due, whoever copies it);
        False when there is nothing to copy, or the store cannot be reached (tried later)."""
        try:
            job = await self._jobs.read(job_id)
            if job is None or not job.copy_needed():
                return False  # deleted, or copied meanwhile
            if job.copy is CopyState.NONE:
                job.copy = CopyState.PENDING
                job.version += 1
                # False: another instance marked it first, which is as good
                await self._jobs.amend(job, expected_version=job.version - 1)
        except RedisError as exc:
            raise_if_cancelling()
            log.warning("job %s: copy not started, the job store failed (%r)", job_id, exc)
            self._later(job_id, self._config.copy_retry_base)
            return False
        return True

    async def _amend(self, job: Job) -> None:
        """Store the copy's bookkeeping on ``job`` over the version last read or written."""
        if not await self._jobs.amend(job, expected_version=self._versions[job.id]):
            raise JobChanged("the job was deleted or changed during its copy")
        self._versions[job.id] = job.version

    async def _lease(self, call: Callable[[str], Awaitable[object]], name: str) -> bool:
        """Ask the leases; False when the answer is no, or when there is none (Redis down,
        whatever its client raises): then the copy waits, it is not a failed try."""
        try:
            return bool(await call(name))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("copy lease %s: %s", name, _describe(exc))
            return False

    async def _copy_holding(self, job: Job, lease: str) -> None:
        """Copy ``job``, renewing its lease every third of its time; ``LeaseLost`` (the copy
        cancelled) when a renewal fails, since another instance may be copying by then."""
        ttl = self._config.copy_lease
        copying = asyncio.ensure_future(self._copy(job))
        try:
            while not copying.done():
                await asyncio.wait({copying}, timeout=ttl / 3)
                if not copying.done() and not await self._lease(self._renew, lease):
                    raise LeaseLost(lease)
            copying.result()
        finally:
            if not copying.done():
                copying.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await copying

    async def _acquire(self, name: str) -> bool:
        return await self._leases.acquire(name, self._config.copy_lease)

    async def _renew(self, name: str) -> bool:
        return await self._leases.renew(name, self._config.copy_lease)

    async def _copy(self, job: Job) -> None:
        started = time.perf_counter()
        entry = self._pool.get(job.current.provider)
        if entry is None:
            raise AssetStoreError(f"provider {job.current.provider} is gone")
        missing: list[str] = []
        for variant in CONTENT_TYPES:
            if job.stored_asset(variant) is not None:
                continue  # stored by an earlier try
            adopted = await self._adopt(job, variant)
            if adopted is not None:
                await self._record(job, adopted)
                continue
            try:
                stream = await entry.adapter.open_content(job.current.upstream_id, variant)
            except Rejected as exc:
                if variant == "video" or not (exc.sent is False or exc.status == 404):
                    raise
                missing.append(variant)  # the upstream has no such image
                continue
            try:
                asset = await self._store_stream(job, variant, stream)
            finally:
                stream.close()
            await self._record(job, asset)
        if missing:
            await self._generate(job, missing)
        retention = self._config.retention
        expires = None if retention is None else self._clock() + retention
        job.settle_copy(CopyState.STORED, expires, None)
        await self._amend(job)
        self._metrics.asset_copies.labels("stored").inc()
        self._metrics.asset_copy_seconds.observe(time.perf_counter() - started)
        size = sum(a.size for a in job.stored)
        log.info("job %s: output stored (%d bytes)", job.id, size)
        self._on_stored(size)

    async def _store_stream(self, job: Job, variant: str, stream: ContentStream) -> StoredAsset:
        digest = hashlib.sha256()
        seen = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal seen
            async for chunk in stream.chunks():
                await self._throttle.take(len(chunk))
                digest.update(chunk)
                seen += len(chunk)
                yield chunk
            if stream.content_length is not None and seen != stream.content_length:
                raise CopyMismatch(f"{variant}: {seen} of {stream.content_length} bytes arrived")

        key = asset_key(job.id, variant)
        size = await self._assets.put(key, counted(), CONTENT_TYPES[variant])
        return self._asset(variant, key, size, digest.hexdigest(), generated=False)

    async def _adopt(self, job: Job, variant: str) -> StoredAsset | None:
        """The variant's object when the asset store already holds it whole (another instance
        of the fleet copied it, or made it): hashed from the store, not fetched again."""
        key = asset_key(job.id, variant)
        found = await self._assets.stat(key)
        if found is None:
            return None
        digest = hashlib.sha256()
        size = 0
        async for chunk in self._assets.read(key, 0, found.size):
            digest.update(chunk)
            size += len(chunk)
        log.info("job %s: %s adopted from the asset store (%d bytes)", job.id, variant, size)
        # which instance made it, and whether from the upstream or by ffmpeg, is not stored
        return self._asset(variant, key, size, digest.hexdigest(), generated=False)

    async def _generate(self, job: Job, variants: list[str]) -> None:
        """Make the images the upstream lacks from the stored video; failures only logged."""
        thumbnailer = self._thumbnailer
        if thumbnailer is None or not thumbnailer.available:
            return
        video = job.stored_asset("video")
        assert video is not None  # stored above, before any image
        directory = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="sora-assets-"))
        try:
            source = self._assets.local_path(video.key)
            if source is None:  # an object store: ffmpeg reads a local copy
                source = directory / "video.mp4"
                await self._download(video, source)
            for variant in variants:
                if variant not in GENERATED:
                    continue
                try:
                    made = await thumbnailer.render(source, variant, directory)
                    asset = await self._store_file(job, variant, made)
                except (ThumbnailFailed, TimeoutError, OSError, AssetStoreError) as exc:
                    self._metrics.thumbnails.labels("failed").inc()
                    log.warning("job %s: no %s made: %s", job.id, variant, exc)
                    continue
                self._metrics.thumbnails.labels("made").inc()
                await self._record(job, asset)
        finally:
            await asyncio.to_thread(_remove_tree, directory)

    async def _download(self, video: StoredAsset, target: Path) -> None:
        file = target.open("wb")  # one quick syscall; a handle never lost to a cancel
        try:
            async for chunk in self._assets.read(video.key, 0, video.size):
                await asyncio.to_thread(file.write, chunk)
        finally:
            file.close()

    async def _store_file(self, job: Job, variant: str, path: Path) -> StoredAsset:
        digest = hashlib.sha256()

        async def chunks() -> AsyncIterator[bytes]:
            file = path.open("rb")  # one quick syscall; a handle never lost to a cancel
            try:
                while chunk := await asyncio.to_thread(file.read, _FILE_CHUNK):
                    digest.update(chunk)
                    yield chunk
            finally:
                file.close()

        key = asset_key(job.id, variant)
        size = await self._assets.put(key, chunks(), CONTENT_TYPES[variant])
        return self._asset(variant, key, size, digest.hexdigest(), generated=True)

    def _asset(
        self, variant: str, key: str, size: int, sha256: str, *, generated: bool
    ) -> StoredAsset:
        return StoredAsset(
            variant=variant,
            key=key,
            size=size,
            sha256=sha256,
            content_type=CONTENT_TYPES[variant],
            stored_at=self._clock(),
            generated=generated,
        )

    async def _record(self, job: Job, asset: StoredAsset) -> None:
        job.add_stored(asset)
        await self._amend(job)  # JobChanged when deleted: _failed removes what it stored

    async def _failed(self, job_id: str, exc: BaseException) -> None:
        reason = _describe(exc)
        try:
            job = await self._jobs.read(job_id)
            if job is None:  # deleted during the copy: what it stored must not outlive it
                for variant in CONTENT_TYPES:
                    await self._assets.delete(asset_key(job_id, variant))
                return
            if not job.copy_needed():
                return  # copied elsewhere
            self._versions[job_id] = job.version
            await self._give_up_or_retry(job, reason)
        except Exception as again:  # the store itself failing: try the copy again later
            raise_if_cancelling()
            log.warning("job %s: copy failure not recorded (%r); retrying", job_id, again)
            self._later(job_id, self._config.copy_retry_base)

    async def _give_up_or_retry(self, job: Job, reason: str) -> None:
        now = self._clock()
        give_up_at = job.upstream_expires_at
        if give_up_at is None:
            give_up_at = (job.completed_at or now) + self._config.copy_window
        if now >= give_up_at:
            job.settle_copy(CopyState.LOST, job.upstream_expires_at, reason)
            await self._amend(job)
            self._metrics.asset_copies.labels("lost").inc()
            log.warning(
                "job %s: copy given up after %d tries, the upstream link has expired: %s",
                job.id, job.copy_tries + 1, reason,
            )  # fmt: skip
            return
        job.copy_failed(reason)
        await self._amend(job)
        self._metrics.asset_copies.labels("retried").inc()
        wait = min(self._config.copy_retry_base * 2 ** (job.copy_tries - 1), MAX_RETRY_WAIT)
        wait = min(wait * (0.5 + self._random.random() / 2), max(give_up_at - now, 0.0))
        log.info("job %s: copy failed (%s); next try in %.1fs", job.id, reason, wait)
        self._later(job.id, wait)

    def _later(self, job_id: str, wait: float) -> None:
        """Queue ``job_id`` again after ``wait`` seconds."""
        self._retries[job_id] = asyncio.get_running_loop().call_later(wait, self._retry, job_id)

    def _retry(self, job_id: str) -> None:
        self._retries.pop(job_id, None)
        if job_id not in self._queued:
            self._queued.add(job_id)
            self._queue.put_nowait(job_id)


def _describe(exc: BaseException) -> str:
    """A short reason for logs and the admin view; upstream errors are already scrubbed."""
    if isinstance(exc, ProviderError):
        return f"upstream: {exc.message}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
