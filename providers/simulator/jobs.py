"""The simulated upstream's jobs: what a render is, how it progresses, and how it will end.

Owns the one in-memory ``JobTable`` behind every dialect. A job's status is a pure function
of the injected clock (queued, then progress rising linearly, then completed), so nothing runs
in the background. Whether a create is refused, and how an accepted job will end (a ``Fault``),
is decided once at create from ``SimulationSettings``: a seeded random source for the rates,
the prompt's words for the lists. Refusals are ``ApiError``s; turning jobs into any dialect's
JSON is the dialects' business, not this module's. The one real-time wait here is
``hold_reply``: a slow-reply create's answer held back after its job exists.

The table keeps creation order as a list of ids with each id's position, so a list page after
a cursor costs O(page), not O(jobs): a sweep over 100k jobs in flight reads 1,000 pages. A job
removed from ``jobs`` (a delete, or a test reaching in) is skipped where its id still stands;
the list is compacted once such gaps outnumber the jobs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import NamedTuple

from providers.simulator.http import ApiError, invalid
from providers.simulator.settings import SimulationSettings

__all__ = [
    "CreateParams",
    "Fault",
    "JobError",
    "JobTable",
    "RenderState",
    "SimulatedCharacter",
    "SimulatedJob",
    "SimulatorStats",
    "VideoStatus",
]

_log = logging.getLogger(__name__)

_FAIL_AT = 90  # output checks run after rendering, which is why real jobs fail "at 90%"
_STALL_AT = 40
_QUOTA_WINDOW = 60.0  # creates_per_minute is counted over a sliding window of this many seconds
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_BLOCKED = "Your request was blocked by our moderation system."
_BLOCKED_INPUT = (
    "Your request was blocked by our moderation system: input images with faces of real people"
    " are not allowed."
)


class VideoStatus(enum.Enum):
    """The four statuses of the OpenAI Video object; the relay maps them to its own words."""

    QUEUED = "queued"  # waiting out queue_seconds
    IN_PROGRESS = "in_progress"  # rendering, or stalled for good
    COMPLETED = "completed"  # rendered; assets downloadable until expires_at
    FAILED = "failed"  # ended at 90% with an error

    @property
    def finished(self) -> bool:
        return self is VideoStatus.COMPLETED or self is VideoStatus.FAILED


class Fault(enum.Enum):
    """How an accepted job will end, decided once when it is created."""

    NONE = "none"  # renders to completion
    FAIL = "fail"  # fails at 90% with internal_error
    OUTPUT_MODERATION = "output_moderation"  # fails at 90% with moderation_blocked
    STALL = "stall"  # stops at 40% and never finishes


class JobError(NamedTuple):
    """What a failed job reports, in each dialect's words."""

    code: str
    message: str  # the Video object's error.message
    relay_reason: str  # the relay's fail_reason, phrased the way relays phrase it


_JOB_ERRORS = {
    Fault.FAIL: JobError(
        "internal_error",
        "Video generation failed.",
        "Video generation failed: upstream render error (internal_error)",
    ),
    Fault.OUTPUT_MODERATION: JobError(
        "moderation_blocked",
        "The generated video was blocked by our moderation system.",
        "Output video rejected by content moderation (moderation_blocked)",
    ),
}


@dataclass(slots=True, frozen=True)
class RenderState:
    """A job as seen at one instant; times are by the simulator's clock."""

    status: VideoStatus
    progress: int
    started_at: float | None = None  # left the queue
    finished_at: float | None = None  # completed or failed
    expires_at: float | None = None  # completed only: assets are gone from then on
    error: JobError | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class SimulatedJob:
    """One render in the table. Immutable: its state is derived from the clock on each read."""

    id: str  # video_<48 hex> from the OpenAI/Azure dialects, a uuid4 from the relay
    model: str
    prompt: str
    size: str
    seconds: str
    created_at: float
    fault: Fault
    remixed_from_video_id: str | None = None
    input_bytes: bytes | None = field(default=None, repr=False)  # an uploaded input_reference
    input_reference: str | None = None  # an image_url, file_id or relay image named instead
    characters: tuple[str, ...] = ()  # ids of this table's characters cast in the render
    sequence: int = 0  # this table's count of jobs and characters made before it, plus one

    def state_at(self, now: float, settings: SimulationSettings) -> RenderState:
        started = self.created_at + settings.queue_seconds
        if now < started:
            return RenderState(VideoStatus.QUEUED, 0)
        render = settings.render_seconds
        error = _JOB_ERRORS.get(self.fault)
        failed_at = started + render * _FAIL_AT / 100
        if error is not None and now >= failed_at:
            return RenderState(VideoStatus.FAILED, _FAIL_AT, started, failed_at, error=error)
        if self.fault is not Fault.STALL and now >= started + render:
            completed_at = started + render
            expires_at = completed_at + settings.asset_ttl
            return RenderState(VideoStatus.COMPLETED, 100, started, completed_at, expires_at)
        # The ceilings keep float rounding from showing a value the job never reports.
        ceiling = _STALL_AT if self.fault is Fault.STALL else (_FAIL_AT - 1 if error else 99)
        progress = 100 if render <= 0 else int(100 * (now - started) / render)
        return RenderState(VideoStatus.IN_PROGRESS, min(progress, ceiling), started)


@dataclass(slots=True, frozen=True)
class SimulatedCharacter:
    """An uploaded character clip; ``sequence`` orders it among the table's jobs."""

    id: str
    name: str
    created_at: float
    clip: bytes = field(repr=False)
    sequence: int


@dataclass(slots=True)
class SimulatorStats:
    """Requests that reached a handler (past auth and api-version checks), by operation."""

    creates_received: int = 0  # create POSTs in any dialect, refused ones included
    creates_accepted: int = 0  # creates that made a job (remixes not included)
    slow_replies: int = 0  # creates whose answer was held back (slow_reply_words)
    abandoned: int = 0  # requests whose caller left during latency; never handled
    gets: int = 0  # status reads, all dialects
    lists: int = 0
    content_downloads: int = 0  # /content and /files requests, refused ones included
    remixes: int = 0  # remix POSTs, refused ones included
    edits: int = 0  # edit POSTs, refused ones included
    extensions: int = 0  # extension POSTs, refused ones included
    characters_created: int = 0  # character uploads accepted
    deletes: int = 0  # delete requests, refused ones included


@dataclass(slots=True, frozen=True)
class CreateParams:
    """A create as any dialect asked for it, validated and in the Video object's terms."""

    prompt: str
    model: str
    size: str
    seconds: str
    input_bytes: bytes | None = None
    input_reference: str | None = None
    characters: tuple[str, ...] = ()

    @property
    def has_image(self) -> bool:
        return self.input_bytes is not None or self.input_reference is not None


class JobTable:
    """The jobs of one simulator (id -> job, in creation order) and its request counts."""

    def __init__(self, settings: SimulationSettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.stats = SimulatorStats()
        self.jobs: dict[str, SimulatedJob] = {}  # insertion order is creation order
        self.characters: dict[str, SimulatedCharacter] = {}
        self._sequence = 0
        self._order: list[str] = []  # ids in creation order, gaps (ids gone from jobs) included
        self._position: dict[str, int] = {}  # id -> its index in _order
        self._clock = clock
        self._random = random.Random(settings.seed)
        self._recent_creates: deque[float] = deque()

    def now(self) -> float:
        return self._clock()

    def state(self, job: SimulatedJob) -> RenderState:
        return job.state_at(self._clock(), self.settings)

    def create(self, params: CreateParams, *, job_id: str) -> SimulatedJob:
        """Admit a create and add its job, counted as accepted; raises ``ApiError`` if refused."""
        job = self.start(params, job_id=job_id)
        self.stats.creates_accepted += 1
        return job

    def start(
        self, params: CreateParams, *, job_id: str, remixed_from: str | None = None
    ) -> SimulatedJob:
        """Admit a create, remix, edit or extension and add its job; raises ``ApiError`` if
        refused (a character it names is unknown, or a fault drawn for it)."""
        for character in params.characters:
            if character not in self.characters:
                raise invalid("characters", f"Character '{character}' not found.")
        fault = self._admit(params.prompt, has_image=params.has_image)
        self._sequence += 1
        job = SimulatedJob(
            id=job_id,
            model=params.model,
            prompt=params.prompt,
            size=params.size,
            seconds=params.seconds,
            created_at=self._clock(),
            fault=fault,
            remixed_from_video_id=remixed_from,
            input_bytes=params.input_bytes,
            input_reference=params.input_reference,
            characters=params.characters,
            sequence=self._sequence,
        )
        self.jobs[job.id] = job
        self._position[job.id] = len(self._order)
        self._order.append(job.id)
        _log.debug("simulated job %s created, fault %s", job.id, fault.value)
        return job

    def add_character(self, name: str, clip: bytes, *, character_id: str) -> SimulatedCharacter:
        """Keep an uploaded character clip under ``character_id``."""
        self._sequence += 1
        character = SimulatedCharacter(character_id, name, self._clock(), clip, self._sequence)
        self.characters[character_id] = character
        self.stats.characters_created += 1
        return character

    def page(
        self, *, after: str | None, limit: int, descending: bool
    ) -> tuple[list[SimulatedJob], bool]:
        """Up to ``limit`` jobs that follow the one named ``after`` (None: from the start) in
        creation order, newest first when ``descending``, and whether more follow.

        Raises ``KeyError`` when ``after`` names no job in the table.
        """
        if after is not None and after not in self.jobs:
            raise KeyError(after)
        if len(self._order) > 2 * len(self.jobs) + 64:
            self._compact()
        order, jobs = self._order, self.jobs
        step = -1 if descending else 1
        if after is not None:
            index = self._position[after] + step
        else:
            index = len(order) - 1 if descending else 0
        found: list[SimulatedJob] = []
        while 0 <= index < len(order):
            job = jobs.get(order[index])
            if job is not None:
                if len(found) == limit:
                    return found, True
                found.append(job)
            index += step
        return found, False

    def _compact(self) -> None:
        self._order = list(self.jobs)
        self._position = {job_id: index for index, job_id in enumerate(self._order)}

    async def hold_reply(self, job: SimulatedJob) -> None:
        """Hold the answer to ``job``'s create ``slow_reply_seconds`` (real time) if its prompt
        names a slow-reply word. The server cancels the wait if the caller leaves."""
        if _mentions(job.prompt, self.settings.slow_reply_words):
            self.stats.slow_replies += 1
            await asyncio.sleep(self.settings.slow_reply_seconds)

    def check_downloadable(self, job: SimulatedJob) -> None:
        """Raise ``ApiError`` unless ``job`` completed and its assets have not expired."""
        now = self._clock()
        state = job.state_at(now, self.settings)
        if state.status is VideoStatus.FAILED:
            raise ApiError(400, f"Video '{job.id}' failed and has no content.", param="video_id")
        if state.status is not VideoStatus.COMPLETED:
            raise ApiError(
                409,
                f"Video '{job.id}' is not ready yet; it is {state.status.value}.",
                code="video_not_ready",
            )
        if state.expires_at is not None and now >= state.expires_at:
            raise ApiError(410, f"The assets of video '{job.id}' have expired.", code="expired")

    def _admit(self, prompt: str, *, has_image: bool) -> Fault:
        """Refuse the create (quota and load first, then moderation) or say how its job ends."""
        s = self.settings
        self._take_quota()
        if self._chance(s.rate_limit_rate):
            raise _rate_limited(s.retry_after, "Rate limit reached for video generation requests.")
        if self._chance(s.submit_error_rate):
            raise ApiError(500, _SERVER_ERROR, error_type="server_error")
        if _mentions(prompt, s.moderation_prompt_words) or self._chance(s.moderation_prompt_rate):
            raise ApiError(400, _BLOCKED, code="moderation_blocked")
        if has_image and self._chance(s.moderation_input_rate):
            raise invalid("input_reference", _BLOCKED_INPUT, "moderation_blocked")
        for fault, rate, words in (
            (Fault.OUTPUT_MODERATION, s.moderation_output_rate, s.moderation_output_words),
            (Fault.FAIL, s.fail_rate, s.fail_words),
            (Fault.STALL, s.stall_rate, s.stall_words),
        ):
            if _mentions(prompt, words) or self._chance(rate):
                return fault
        return Fault.NONE

    def _take_quota(self) -> None:
        """Count this create against creates_per_minute, or refuse it until a slot frees up."""
        limit = self.settings.creates_per_minute
        if limit is None:
            return
        now = self._clock()
        while self._recent_creates and self._recent_creates[0] <= now - _QUOTA_WINDOW:
            self._recent_creates.popleft()
        if len(self._recent_creates) >= limit:
            wait = self._recent_creates[0] + _QUOTA_WINDOW - now
            raise _rate_limited(wait, f"Rate limit reached: {limit} video creates per minute.")
        self._recent_creates.append(now)

    def _chance(self, rate: float) -> bool:
        # A rate of zero draws nothing, so enabling one fault leaves the others' draws alone.
        return rate > 0 and self._random.random() < rate


def _rate_limited(retry_after: float, message: str) -> ApiError:
    seconds = max(0, math.ceil(retry_after))
    return ApiError(
        429,
        f"{message} Please try again in {seconds}s.",
        code="rate_limit_exceeded",
        error_type="requests",
        headers={"Retry-After": str(seconds)},
    )


def _mentions(prompt: str, words: Collection[str]) -> bool:
    text = prompt.casefold()
    return any(word.casefold() in text for word in words)
