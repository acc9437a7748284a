"""Jobs and attempts: the proxy-owned render and each try of it on one provider.

A job's state only moves forward through ``Job.transition`` (compare-and-set on the expected
state), so a job is settled exactly once however many pollers or handlers race for it.
Progress never goes backwards and stays below 100 until the job is completed. Each change bumps
``version``, which the store uses to keep the newest snapshot.

An attempt whose create was sent but never answered is ``UNKNOWN``, with no upstream id, until
the poller finds it upstream (``Job.confirm``) or gives up on it; its job stays queued.

A completed job's output is copied into the asset store (``router.assets``): ``copy`` says how
far that got, ``stored`` holds each variant whose copy is whole (size and SHA-256), and once
the video is stored ``expires_at`` is when our copy goes, not when the upstream's link does
(``upstream_expires_at`` keeps that).
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from typing import Any

from providers.base import Operation, UpstreamJob, UpstreamStatus


class JobState(enum.Enum):
    QUEUED = "queued"  # accepted by a provider, not rendering yet
    IN_PROGRESS = "in_progress"  # a provider is rendering it
    COMPLETED = (
        "completed"  # rendered; the asset can be downloaded from the last attempt's provider
    )
    FAILED = "failed"  # finished without an asset; error_code says why

    @property
    def finished(self) -> bool:
        return self is JobState.COMPLETED or self is JobState.FAILED


_FORWARD: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.IN_PROGRESS, JobState.COMPLETED, JobState.FAILED}),
    JobState.IN_PROGRESS: frozenset({JobState.COMPLETED, JobState.FAILED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset(),
}


class AttemptState(enum.Enum):
    UNKNOWN = "unknown"  # the create was sent, the answer never came; upstream_id is ""
    QUEUED = "queued"  # the upstream accepted it and has not started
    IN_PROGRESS = "in_progress"  # the upstream is rendering
    COMPLETED = "completed"  # the upstream finished with an asset
    FAILED = "failed"  # the upstream finished without an asset, or we gave up on it

    @property
    def finished(self) -> bool:
        return self is AttemptState.COMPLETED or self is AttemptState.FAILED


class CopyState(enum.Enum):
    """How far the copy of a job's output into the asset store got."""

    NONE = "none"  # not completed (or completed before copies existed): nothing to copy
    PENDING = "pending"  # completed; the copy is not whole yet (queued, running, retrying)
    STORED = "stored"  # the video (and what else the provider had) is in the asset store
    LOST = "lost"  # every try failed until the upstream's link expired; there is no copy
    EXPIRED = "expired"  # retention removed our copy (by age or by max_bytes)


@dataclass(slots=True, frozen=True, kw_only=True)
class StoredAsset:
    """One variant's whole copy in the asset store."""

    variant: str  # video | thumbnail | spritesheet
    key: str  # the object's key in the asset store
    size: int  # bytes
    sha256: str  # hex digest of the bytes, also the strong ETag they are served with
    content_type: str
    stored_at: float  # unix seconds, when the copy became whole
    generated: bool = False  # made by us from the stored video (the upstream had none)

    def to_record(self) -> dict[str, Any]:
        return {
            "variant": self.variant,
            "key": self.key,
            "size": self.size,
            "sha256": self.sha256,
            "content_type": self.content_type,
            "stored_at": self.stored_at,
            "generated": self.generated,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StoredAsset:
        return cls(**record)


class _RandomHex:
    """Hex digits from the OS's CSPRNG, read 4 KiB at a time: one system call per ~200 ids
    instead of one each."""

    __slots__ = ("_buffer", "_offset")

    _READ = 4096

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Drop what was read (a forked child must not hand out its parent's digits)."""
        self._buffer: bytes = b""
        self._offset = 0

    def take(self, count: int) -> str:
        end = self._offset + count
        if end > len(self._buffer):
            self._buffer, self._offset, end = os.urandom(self._READ), 0, count
        digits = self._buffer[self._offset : end].hex()
        self._offset = end
        return digits


_random_hex = _RandomHex()
os.register_at_fork(after_in_child=_random_hex.forget)


def new_job_id() -> str:
    """``video_`` and 48 hex digits, the shape OpenAI's ids have: 12 of milliseconds since the
    epoch, then 36 random ones. Ids in time order land side by side in the store's primary-key
    index, so a batch of inserts dirties one leaf page instead of one per job."""
    return f"video_{time.time_ns() // 1_000_000:012x}{_random_hex.take(18)}"


@dataclass(slots=True, kw_only=True)
class Attempt:
    """One try of a job on one provider, under that provider's own id."""

    provider: str
    upstream_id: str
    state: AttemptState = AttemptState.QUEUED
    progress: int = 0
    submitted_at: float
    finished_at: float | None = None
    error_code: str | None = None
    error_message: str | None = None
    # What the upstream reported for this attempt (``UpstreamJob``), kept for accounting;
    # the client's spend is always the configured price, captured at submit.
    upstream_cost_usd: float | None = None
    usage_tokens: int | None = None

    def to_record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "upstream_id": self.upstream_id,
            "state": self.state.value,
            "progress": self.progress,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "upstream_cost_usd": self.upstream_cost_usd,
            "usage_tokens": self.usage_tokens,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Attempt:
        return cls(
            provider=record["provider"],
            upstream_id=record["upstream_id"],
            state=AttemptState(record["state"]),
            progress=record["progress"],
            submitted_at=record["submitted_at"],
            finished_at=record["finished_at"],
            error_code=record["error_code"],
            error_message=record["error_message"],
            upstream_cost_usd=record.get("upstream_cost_usd"),
            usage_tokens=record.get("usage_tokens"),
        )


@dataclass(slots=True, kw_only=True)
class Job:
    """A render the proxy owns, under its own id, whichever providers it runs on."""

    id: str
    owner: str  # the client key's name
    model: str  # the client-facing model name
    prompt: str
    size: str
    seconds: int
    created_at: float
    state: JobState = JobState.QUEUED
    progress: int = 0
    completed_at: float | None = None
    expires_at: float | None = None
    remixed_from: str | None = None
    watermark: bool | None = None  # the relay switches it was created with (relay upstreams)
    private: bool | None = None
    error_code: str | None = None
    error_message: str | None = None
    price_per_second: float = 0.0  # at the provider of the current attempt
    attempts: list[Attempt] = field(default_factory=list)
    version: int = 0
    operation: Operation = Operation.CREATE  # how the render is (re)submitted
    source_video_id: str | None = None  # the job an edit or extension started from
    segment_seconds: int | None = None  # an extension: the new segment (``seconds`` is the total)
    extensions: int = 0  # extension steps in this video's chain
    characters: tuple[str, ...] = ()  # our character ids cast in the render
    callback_url: str | None = None  # where this job's webhook events also go (per request)
    # the copy into the asset store (router.assets); every change bumps version like the rest
    copy: CopyState = CopyState.NONE
    stored: list[StoredAsset] = field(default_factory=list)
    copy_tries: int = 0
    copy_error: str | None = None  # why the last try failed (no secrets: our own words)
    upstream_expires_at: float | None = None  # when the upstream drops the output
    # (version, bytes) of the client-facing body last served for this job; reads of an
    # unchanged job reuse it (``router.api.openai.video_body``). Not persisted.
    served: tuple[int, bytes] | None = field(default=None, repr=False, compare=False)
    # The X-Request-Id of the request that created it, for the poller's log lines
    # (``router.jobs.lifecycle``). Not persisted: after a restart the lines go without it.
    request_id: str | None = field(default=None, repr=False, compare=False)

    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    @property
    def rendered_seconds(self) -> int:
        """The seconds a provider renders (and bills): an extension's segment, else all."""
        return self.seconds if self.segment_seconds is None else self.segment_seconds

    @property
    def cost_usd(self) -> float:
        """What the finished render costs; failed renders cost nothing."""
        if self.state is not JobState.COMPLETED:
            return 0.0
        return round(self.price_per_second * self.rendered_seconds, 6)

    def transition(self, expected: JobState, new: JobState) -> bool:
        """Move from ``expected`` to ``new`` if the job is still in ``expected``."""
        if self.state is not expected or new not in _FORWARD[expected]:
            return False
        self.state = new
        self.version += 1
        return True

    def advance_progress(self, progress: int) -> bool:
        """Raise progress (never lower it), capped at 99 until the job completes."""
        ceiling = 100 if self.state is JobState.COMPLETED else 99
        value = min(max(progress, 0), ceiling)
        if value <= self.progress:
            return False
        self.progress = value
        self.version += 1
        return True

    def observe(self, seen: UpstreamJob, now: float) -> bool:
        """Fold what the current attempt's upstream said into the job; True if anything changed.

        Completion and failure settle the attempt and the job once; an unrecognised status word
        changes nothing, so the job stays in flight, and neither does anything said about an
        ``UNKNOWN`` attempt before ``confirm``.
        """
        attempt = self.current
        if (
            attempt.state.finished
            or attempt.state is AttemptState.UNKNOWN
            or seen.status is UpstreamStatus.UNRECOGNISED
        ):
            return False
        before = self.version
        metered = (seen.cost_usd, seen.usage_tokens)
        if metered != (None, None) and metered != (attempt.upstream_cost_usd, attempt.usage_tokens):
            attempt.upstream_cost_usd, attempt.usage_tokens = metered
            self.version += 1
        if seen.progress is not None and seen.progress > attempt.progress:
            attempt.progress = seen.progress
            self.version += 1
        if seen.status is UpstreamStatus.IN_PROGRESS:
            attempt.state = AttemptState.IN_PROGRESS
            self.transition(JobState.QUEUED, JobState.IN_PROGRESS)
            self.advance_progress(attempt.progress)
        elif seen.status is UpstreamStatus.COMPLETED:
            self._settle_attempt(AttemptState.COMPLETED, now, None, None)
            if self.transition(self.state, JobState.COMPLETED):
                self.progress = 100
                self.completed_at = now
                self.expires_at = self.upstream_expires_at = seen.expires_at
        elif seen.status is UpstreamStatus.FAILED:
            code = seen.error_code or "render_failed"
            message = seen.error_message or "The provider failed to render the video."
            self._settle_attempt(AttemptState.FAILED, now, code, message)
        return self.version != before

    def fail(self, code: str, message: str, now: float) -> bool:
        """Settle the job as failed (once); the current attempt is closed too."""
        if self.state.finished:
            return False
        if not self.current.state.finished:
            self._settle_attempt(AttemptState.FAILED, now, code, message)
        self.transition(self.state, JobState.FAILED)
        self.error_code = code
        self.error_message = message
        self.completed_at = now
        return True

    def abandon(self, code: str, message: str, now: float) -> bool:
        """Give up on the current attempt (stalled, lost) while the job itself stays open."""
        if self.current.state.finished:
            return False
        self._settle_attempt(AttemptState.FAILED, now, code, message)
        return True

    def confirm(self, upstream_id: str) -> bool:
        """The current ``UNKNOWN`` attempt was found upstream as ``upstream_id``; it is queued
        there until ``observe`` says more. False when the attempt is not unknown."""
        attempt = self.current
        if attempt.state is not AttemptState.UNKNOWN:
            return False
        attempt.upstream_id = upstream_id
        attempt.state = AttemptState.QUEUED
        self.version += 1
        return True

    def add_attempt(self, attempt: Attempt, price_per_second: float) -> None:
        """Continue on another provider under the same id; state and progress stay as they are."""
        self.attempts.append(attempt)
        self.price_per_second = price_per_second
        self.version += 1

    def stored_asset(self, variant: str) -> StoredAsset | None:
        """The whole copy of ``variant`` in the asset store, if there is one."""
        for asset in self.stored:
            if asset.variant == variant:
                return asset
        return None

    def copy_needed(self) -> bool:
        """Completed, and the copy not yet whole nor given up on."""
        return self.state is JobState.COMPLETED and self.copy in (CopyState.NONE, CopyState.PENDING)

    def add_stored(self, asset: StoredAsset) -> None:
        """Record a whole copy of one variant (replacing an older copy of it)."""
        self.stored = [a for a in self.stored if a.variant != asset.variant] + [asset]
        self.version += 1

    def settle_copy(self, state: CopyState, expires_at: float | None, error: str | None) -> None:
        """End the copy: ``STORED`` with our copy's expiry, ``LOST``, or ``EXPIRED`` (then the
        stored variants are gone and ``expires_at`` says when they went)."""
        self.copy = state
        self.expires_at = expires_at
        self.copy_error = error
        if state is not CopyState.STORED:
            self.stored = []
        self.version += 1

    def copy_failed(self, error: str) -> None:
        """One try of the copy failed; it stays pending."""
        self.copy = CopyState.PENDING
        self.copy_tries += 1
        self.copy_error = error
        self.version += 1

    def _settle_attempt(
        self, state: AttemptState, now: float, code: str | None, message: str | None
    ) -> None:
        attempt = self.current
        attempt.state = state
        attempt.finished_at = now
        attempt.error_code = code
        attempt.error_message = message
        self.version += 1

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "model": self.model,
            "prompt": self.prompt,
            "size": self.size,
            "seconds": self.seconds,
            "created_at": self.created_at,
            "state": self.state.value,
            "progress": self.progress,
            "completed_at": self.completed_at,
            "expires_at": self.expires_at,
            "remixed_from": self.remixed_from,
            "watermark": self.watermark,
            "private": self.private,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "price_per_second": self.price_per_second,
            "attempts": [a.to_record() for a in self.attempts],
            "version": self.version,
            "operation": self.operation.value,
            "source_video_id": self.source_video_id,
            "segment_seconds": self.segment_seconds,
            "extensions": self.extensions,
            "characters": list(self.characters),
            "callback_url": self.callback_url,
            "copy": self.copy.value,
            "stored": [a.to_record() for a in self.stored],
            "copy_tries": self.copy_tries,
            "copy_error": self.copy_error,
            "upstream_expires_at": self.upstream_expires_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        return cls(
            id=record["id"],
            owner=record["owner"],
            model=record["model"],
            prompt=record["prompt"],
            size=record["size"],
            seconds=record["seconds"],
            created_at=record["created_at"],
            state=JobState(record["state"]),
            progress=record["progress"],
            completed_at=record["completed_at"],
            expires_at=record["expires_at"],
            remixed_from=record["remixed_from"],
            watermark=record.get("watermark"),  # absent from jobs stored before issue 15
            private=record.get("private"),
            error_code=record["error_code"],
            error_message=record["error_message"],
            price_per_second=record["price_per_second"],
            attempts=[Attempt.from_record(a) for a in record["attempts"]],
            version=record["version"],
            # absent from records written before edits, extensions and characters existed
            operation=Operation(record.get("operation", Operation.CREATE.value)),
            source_video_id=record.get("source_video_id"),
            segment_seconds=record.get("segment_seconds"),
            extensions=record.get("extensions", 0),
            characters=tuple(record.get("characters", ())),
            callback_url=record.get("callback_url"),
            # the copy fields came later: records written before them read as "no copy"
            copy=CopyState(record.get("copy", "none")),
            stored=[StoredAsset.from_record(a) for a in record.get("stored", ())],
            copy_tries=record.get("copy_tries", 0),
            copy_error=record.get("copy_error"),
            upstream_expires_at=record.get("upstream_expires_at", record["expires_at"]),
        )
