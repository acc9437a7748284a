"""A fake upstream video provider over real HTTP, for tests, demos and benchmarks.

One aiohttp server speaks three wire formats over one in-memory job table::

    /v1/videos...               OpenAI Videos API     Authorization: Bearer <key>
    /openai/v1/videos...        Azure OpenAI Sora 2   api-key: <key>, ?api-version=preview|v1
    /v2/videos/generations...   relay task dialect    Authorization: Bearer <key>
    /files/{id}.mp4             the relay's CDN link  no auth

A job's status is a pure function of the injected clock (queued, then progress rising linearly,
then completed), so tests advance time instead of sleeping and no background task exists.
Whether a create is refused, and how an accepted job will end, is decided once at create from
``SimulationSettings``: a seeded random source for the rates, the prompt's words for the lists.

Errors use the OpenAI envelope ``{"error": {message, type, param, code}}`` on the OpenAI and
Azure paths, and new-api's task error ``{"code", "message", "data": null}`` on the relay paths.
This module must not import from ``router`` or ``monitoring``; media bytes come from
``providers.sim_media``.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
import math
import random
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from providers.sim_media import Variant, make_asset, send_asset
from providers.simulation import SimulationSettings

__all__ = [
    "Fault",
    "JobError",
    "RenderState",
    "SimulatedJob",
    "Simulator",
    "SimulatorStats",
    "VideoStatus",
    "serve_forever",
]

_log = logging.getLogger(__name__)

_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024", "1920x1080", "1080x1920")
# OpenAI's own lengths plus the 10/15/25 s that OpenAI-compatible gateways also take.
_SECONDS = ("4", "8", "10", "12", "15", "16", "20", "25")
_RELAY_DURATIONS = ("4", "8", "10", "12", "15", "25")
_RELAY_SIZES = {
    ("16:9", False): "1280x720",
    ("9:16", False): "720x1280",
    ("16:9", True): "1792x1024",
    ("9:16", True): "1024x1792",
}
_AZURE_API_VERSIONS = frozenset({"preview", "v1"})
_MAX_PROMPT = 32000
_MISSING = "missing_required_parameter"
_FAIL_AT = 90  # output checks run after rendering, which is why real jobs fail "at 90%"
_STALL_AT = 40
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
_BLOCKED = "Your request was blocked by our moderation system."
_BLOCKED_INPUT = (
    "Your request was blocked by our moderation system: input images with faces of real people"
    " are not allowed."
)
_QUOTA_WINDOW = 60.0  # creates_per_minute is counted over a sliding window of this many seconds
_MAX_BODY = 32 * 1024**2  # input images may be up to 20 MiB; aiohttp's default cap is 1 MiB


class VideoStatus(enum.Enum):
    """The four statuses of the OpenAI Video object; the relay maps them to its own words."""

    QUEUED = "queued"  # waiting out queue_seconds
    IN_PROGRESS = "in_progress"  # rendering, or stalled for good
    COMPLETED = "completed"  # rendered; assets downloadable until expires_at
    FAILED = "failed"  # ended at 90% with an error

    @property
    def finished(self) -> bool:
        return self is VideoStatus.COMPLETED or self is VideoStatus.FAILED


_RELAY_STATUS = {
    VideoStatus.QUEUED: "NOT_START",
    VideoStatus.IN_PROGRESS: "IN_PROGRESS",
    VideoStatus.COMPLETED: "SUCCESS",
    VideoStatus.FAILED: "FAILURE",
}


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


@dataclass(slots=True)
class SimulatorStats:
    """Requests that reached a handler (past auth and api-version checks), by operation."""

    creates_received: int = 0  # create POSTs in any dialect, refused ones included
    creates_accepted: int = 0  # creates that made a job (remixes not included)
    gets: int = 0  # status reads, all dialects
    lists: int = 0
    content_downloads: int = 0  # /content and /files requests, refused ones included
    remixes: int = 0  # remix POSTs, refused ones included
    deletes: int = 0  # delete requests, refused ones included


class _ApiError(Exception):
    """An error answer; each dialect's middleware renders it in that dialect's body shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type
        self.headers = headers


@dataclass(slots=True, frozen=True)
class _CreateParams:
    prompt: str
    model: str
    size: str
    seconds: str
    input_bytes: bytes | None = None
    input_reference: str | None = None

    @property
    def has_image(self) -> bool:
        return self.input_bytes is not None or self.input_reference is not None


class Simulator:
    """The simulated upstream. Build it, ``await start()``, point a provider at ``base_url``.

    Tests may read ``jobs`` (id -> job, in creation order), ``stats``, ``settings`` and
    ``api_key``; ``app`` is the aiohttp application, for embedding in another runner.
    """

    def __init__(
        self,
        settings: SimulationSettings,
        *,
        api_key: str = "",
        deployments: Collection[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.stats = SimulatorStats()
        self.jobs: dict[str, SimulatedJob] = {}  # insertion order is creation order
        self.api_key = api_key  # empty: every request is let in
        self._deployments = None if deployments is None else frozenset(deployments)
        self._clock = clock
        self._random = random.Random(settings.seed)
        self._recent_creates: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self._base_url = ""
        self.app = self._build_app()

    def _build_app(self) -> web.Application:
        openai = web.Application(middlewares=[self._openai_gate])
        azure = web.Application(middlewares=[self._azure_gate])
        for sub, create in ((openai, self._create_openai), (azure, self._create_azure)):
            sub.router.add_post("/videos", create)
            sub.router.add_get("/videos", self._list)
            sub.router.add_get("/videos/{video_id}", self._retrieve)
            sub.router.add_delete("/videos/{video_id}", self._delete)
            sub.router.add_get("/videos/{video_id}/content", self._content)
            sub.router.add_post("/videos/{video_id}/remix", self._remix)
        relay = web.Application(middlewares=[self._relay_gate])
        relay.router.add_post("/videos/generations", self._create_relay)
        relay.router.add_get("/videos/generations/{task_id}", self._retrieve_relay)
        app = web.Application(middlewares=[self._latency], client_max_size=_MAX_BODY)
        app.add_subapp("/v1", openai)
        app.add_subapp("/openai/v1", azure)
        app.add_subapp("/v2", relay)
        app.router.add_get("/files/{video_id}.mp4", self._file)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port); returns the root URL."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._base_url = str(URL.build(scheme="http", host=host, port=runner.addresses[0][1]))
        return self._base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        if not self._base_url:
            raise RuntimeError("simulator not started")
        return self._base_url

    # -- dialect gates: auth, api-version, and each dialect's error body ------------------------

    @web.middleware
    async def _latency(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # Real time, not the injected clock: latency exists to exercise the caller's timeouts.
        if self.settings.latency > 0:
            await asyncio.sleep(self.settings.latency)
        return await handler(request)

    @web.middleware
    async def _openai_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._check_bearer(request)
            return await handler(request)
        except _ApiError as error:
            return _openai_error(error)

    @web.middleware
    async def _azure_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # Azure also takes Entra bearer tokens; a simulated resource has only its key.
            if not self._key_matches(request.headers.get("api-key", "")):
                raise _ApiError(
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint.",
                    code="401",
                )
            version = request.query.get("api-version")
            if version is None:  # Azure answers a bare path as if it did not exist
                raise _ApiError(404, "Resource not found", code="404")
            if version not in _AZURE_API_VERSIONS:
                raise _ApiError(400, "API version not supported", code="BadRequest")
            return await handler(request)
        except _ApiError as error:
            return _openai_error(error)

    @web.middleware
    async def _relay_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self._check_bearer(request)
            return await handler(request)
        except _ApiError as error:
            body = {"code": error.code or error.error_type, "message": error.message, "data": None}
            return _json(body, status=error.status, headers=error.headers)

    def _check_bearer(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not self._key_matches(token if scheme.lower() == "bearer" else ""):
            raise _ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def _key_matches(self, given: str) -> bool:
        return not self.api_key or hmac.compare_digest(given.encode(), self.api_key.encode())

    # -- the dialect-independent job logic -------------------------------------------------------

    def _admit(self, prompt: str, *, has_image: bool) -> Fault:
        """Refuse the create (quota and load first, then moderation) or say how its job ends."""
        s = self.settings
        self._take_quota()
        if self._chance(s.rate_limit_rate):
            raise _rate_limited(s.retry_after, "Rate limit reached for video generation requests.")
        if self._chance(s.submit_error_rate):
            raise _ApiError(500, _SERVER_ERROR, error_type="server_error")
        if _mentions(prompt, s.moderation_prompt_words) or self._chance(s.moderation_prompt_rate):
            raise _ApiError(400, _BLOCKED, code="moderation_blocked")
        if has_image and self._chance(s.moderation_input_rate):
            raise _invalid("input_reference", _BLOCKED_INPUT, "moderation_blocked")
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

    def _start_job(
        self, params: _CreateParams, *, job_id: str, remixed_from: str | None = None
    ) -> SimulatedJob:
        fault = self._admit(params.prompt, has_image=params.has_image)
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
        )
        self.jobs[job.id] = job
        _log.debug("simulated job %s created, fault %s", job.id, fault.value)
        return job

    def _create_job(self, params: _CreateParams, *, job_id: str) -> SimulatedJob:
        job = self._start_job(params, job_id=job_id)
        self.stats.creates_accepted += 1
        return job

    def _state(self, job: SimulatedJob) -> RenderState:
        return job.state_at(self._clock(), self.settings)

    def _find(self, request: web.Request) -> SimulatedJob:
        video_id = request.match_info["video_id"]
        job = self.jobs.get(video_id)
        if job is None:
            raise _ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")
        return job

    def _check_downloadable(self, job: SimulatedJob) -> None:
        now = self._clock()
        state = job.state_at(now, self.settings)
        if state.status is VideoStatus.FAILED:
            raise _ApiError(400, f"Video '{job.id}' failed and has no content.", param="video_id")
        if state.status is not VideoStatus.COMPLETED:
            raise _ApiError(
                409,
                f"Video '{job.id}' is not ready yet; it is {state.status.value}.",
                code="video_not_ready",
            )
        if state.expires_at is not None and now >= state.expires_at:
            raise _ApiError(410, f"The assets of video '{job.id}' have expired.", code="expired")

    def _video_object(self, job: SimulatedJob, now: float) -> dict[str, object]:
        state = job.state_at(now, self.settings)
        error = state.error
        return {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": state.status.value,
            "progress": state.progress,
            "created_at": int(job.created_at),
            "completed_at": _unix(state.finished_at),
            "expires_at": _unix(state.expires_at),
            "prompt": job.prompt,
            "size": job.size,
            "seconds": job.seconds,
            "remixed_from_video_id": job.remixed_from_video_id,
            "error": None if error is None else {"code": error.code, "message": error.message},
        }

    # -- OpenAI and Azure handlers ---------------------------------------------------------------

    async def _create_openai(self, request: web.Request) -> web.Response:
        self.stats.creates_received += 1
        params = _parse_create(*await _read_fields(request), default_model="sora-2")
        job = self._create_job(params, job_id=_new_video_id())
        return _json(self._video_object(job, self._clock()))

    async def _create_azure(self, request: web.Request) -> web.Response:
        self.stats.creates_received += 1
        params = _parse_create(*await _read_fields(request), default_model=None)
        if self._deployments is not None and params.model not in self._deployments:
            raise _ApiError(
                404,
                f"The API deployment '{params.model}' does not exist.",
                code="DeploymentNotFound",
                param="model",
                error_type="video_generation_user_error",
            )
        job = self._create_job(params, job_id=_new_video_id())
        return _json(self._video_object(job, self._clock()))

    async def _retrieve(self, request: web.Request) -> web.Response:
        self.stats.gets += 1
        return _json(self._video_object(self._find(request), self._clock()))

    async def _list(self, request: web.Request) -> web.Response:
        self.stats.lists += 1
        order = _choice(request.query, "order", ("asc", "desc"), "desc")
        limit = _limit(request.query.get("limit", "20"))
        jobs = list(self.jobs.values())
        if order == "desc":
            jobs.reverse()
        after = request.query.get("after")
        if after:
            ids = [job.id for job in jobs]
            if after not in ids:
                raise _ApiError(400, f"Invalid 'after': no video '{after}'.", param="after")
            jobs = jobs[ids.index(after) + 1 :]
        page, now = jobs[:limit], self._clock()
        return _json(
            {
                "object": "list",
                "data": [self._video_object(job, now) for job in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": len(jobs) > limit,
            }
        )

    async def _delete(self, request: web.Request) -> web.Response:
        self.stats.deletes += 1
        job = self._find(request)
        if not self._state(job).status.finished:
            raise _ApiError(
                400,
                f"Video '{job.id}' is still rendering; only completed or failed videos can be"
                " deleted.",
                param="video_id",
            )
        del self.jobs[job.id]
        return _json({"id": job.id, "object": "video.deleted", "deleted": True})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        self.stats.content_downloads += 1
        job = self._find(request)
        variant = Variant(_choice(request.query, "variant", [v.value for v in Variant], "video"))
        self._check_downloadable(job)
        return await send_asset(request, make_asset(job.id, variant, self.settings.video_bytes))

    async def _remix(self, request: web.Request) -> web.Response:
        self.stats.remixes += 1
        source = self._find(request)
        fields, _ = await _read_fields(request)
        prompt = _prompt(fields)
        if self._state(source).status is not VideoStatus.COMPLETED:
            raise _ApiError(
                400,
                f"Video '{source.id}' is not completed and cannot be remixed.",
                param="video_id",
            )
        params = _CreateParams(prompt, source.model, source.size, source.seconds)
        job = self._start_job(params, job_id=_new_video_id(), remixed_from=source.id)
        return _json(self._video_object(job, self._clock()))

    # -- relay handlers and its CDN link ---------------------------------------------------------

    async def _create_relay(self, request: web.Request) -> web.Response:
        self.stats.creates_received += 1
        fields, form = await _read_fields(request)
        if form:
            raise _ApiError(400, "The request body must be JSON.", code="invalid_request")
        job = self._create_job(_parse_relay(fields), job_id=str(uuid.uuid4()))
        return _json({"task_id": job.id})

    async def _retrieve_relay(self, request: web.Request) -> web.Response:
        self.stats.gets += 1
        task_id = request.match_info["task_id"]
        job = self.jobs.get(task_id)
        if job is None:
            raise _ApiError(404, f"Task '{task_id}' does not exist.", code="task_not_exist")
        state = self._state(job)
        output = request.url.origin().join(URL(f"/files/{job.id}.mp4"))
        return _json(
            {
                "task_id": job.id,
                "platform": "sora",
                "action": "generate",
                "status": _RELAY_STATUS[state.status],
                "progress": f"{state.progress}%",
                "fail_reason": state.error.relay_reason if state.error else "",
                "submit_time": int(job.created_at),
                "start_time": _unix(state.started_at),
                "finish_time": _unix(state.finished_at),
                "data": {"output": str(output)} if state.status is VideoStatus.COMPLETED else None,
            }
        )

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.stats.content_downloads += 1
        job = self.jobs.get(request.match_info["video_id"])
        if job is None:
            raise web.HTTPNotFound()
        try:
            self._check_downloadable(job)
        except _ApiError as error:  # a CDN has no error envelope, only a status
            raise web.HTTPNotFound(text=error.message) from error
        return await send_asset(
            request, make_asset(job.id, Variant.VIDEO, self.settings.video_bytes)
        )


async def serve_forever(
    settings: SimulationSettings, *, host: str, port: int, api_key: str
) -> None:
    """Run a simulator until cancelled (the ``sora-proxy simulate`` command)."""
    simulator = Simulator(settings, api_key=api_key)
    url = await simulator.start(host, port)
    _log.info("simulated upstream at %s (OpenAI /v1, Azure /openai/v1, relay /v2)", url)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


# -- request parsing: one validator per field shape, OpenAI-style 400s ---------------------------


async def _read_fields(request: web.Request) -> tuple[Mapping[str, object], bool]:
    """The body's fields, and whether they came as a form (multipart or urlencoded)."""
    if request.content_type != "application/json":
        return await request.post(), True
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise _ApiError(400, "We could not parse the JSON body of your request.") from error
    if not isinstance(payload, dict):
        raise _ApiError(400, "The JSON body must be an object.", code="invalid_type")
    return payload, False


def _parse_create(
    fields: Mapping[str, object], form: bool, *, default_model: str | None
) -> _CreateParams:
    prompt = _prompt(fields)
    model = fields.get("model", default_model)
    if model is None:
        raise _invalid("model", "Missing required parameter: 'model'.", _MISSING)
    if not isinstance(model, str) or not model:
        raise _invalid("model", "Invalid 'model': expected a non-empty string.", "invalid_type")
    input_bytes, input_reference = _input_reference(fields.get("input_reference"), form)
    return _CreateParams(
        prompt=prompt,
        model=model,
        size=_choice(fields, "size", _SIZES, "720x1280"),
        seconds=_choice(fields, "seconds", _SECONDS, "4"),
        input_bytes=input_bytes,
        input_reference=input_reference,
    )


def _parse_relay(fields: Mapping[str, object]) -> _CreateParams:
    prompt = _prompt(fields)
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model", "'model' is required.", "invalid_request")
    hd = fields.get("hd", False)
    images = fields.get("images", [])
    if not isinstance(hd, bool):
        raise _invalid("hd", "'hd' must be a boolean.", "invalid_request")
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise _invalid("images", "'images' must be a list of image URLs.", "invalid_request")
    aspect_ratio = _choice(fields, "aspect_ratio", ("16:9", "9:16"), "16:9")
    return _CreateParams(
        prompt=prompt,
        model=model,
        size=_RELAY_SIZES[aspect_ratio, hd],
        seconds=_choice(fields, "duration", _RELAY_DURATIONS, "10"),
        input_reference=images[0] if images else None,  # relays use only the first image
    )


def _prompt(fields: Mapping[str, object]) -> str:
    prompt = fields.get("prompt")
    if prompt is None:
        raise _invalid("prompt", "Missing required parameter: 'prompt'.", _MISSING)
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > _MAX_PROMPT:
        raise _invalid("prompt", f"Invalid 'prompt': expected 1 to {_MAX_PROMPT} characters.")
    return prompt


def _choice(fields: Mapping[str, object], name: str, allowed: Collection[str], default: str) -> str:
    value = fields.get(name, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON clients send seconds and duration as numbers too
    if not isinstance(value, str) or value not in allowed:
        expected = ", ".join(f"'{a}'" for a in allowed)
        raise _invalid(name, f"Invalid value for '{name}': expected one of {expected}.")
    return value


def _input_reference(value: object, form: bool) -> tuple[bytes | None, str | None]:
    """The uploaded image, or the image_url or file_id named instead; both None without one."""
    if value is None:
        return None, None
    if form and isinstance(value, web.FileField):
        return value.file.read(), None
    if not form and isinstance(value, dict):
        reference = value.get("image_url") or value.get("file_id")
        if isinstance(reference, str):
            return None, reference
    expected = "a file" if form else "an object with 'image_url' or 'file_id'"
    message = f"Invalid type for 'input_reference': expected {expected}."
    raise _invalid("input_reference", message, "invalid_type")


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 0 <= int(raw) <= 100:
        raise _invalid("limit", "Invalid 'limit': expected an integer from 0 to 100.")
    return int(raw)


def _invalid(param: str, message: str, code: str = "invalid_value") -> _ApiError:
    return _ApiError(400, message, param=param, code=code)


# -- answers ------------------------------------------------------------------------------------


def _json(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def _openai_error(error: _ApiError) -> web.Response:
    envelope = {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }
    return _json(envelope, status=error.status, headers=error.headers)


def _rate_limited(retry_after: float, message: str) -> _ApiError:
    seconds = max(0, math.ceil(retry_after))
    return _ApiError(
        429,
        f"{message} Please try again in {seconds}s.",
        code="rate_limit_exceeded",
        error_type="requests",
        headers={"Retry-After": str(seconds)},
    )


def _mentions(prompt: str, words: Collection[str]) -> bool:
    text = prompt.casefold()
    return any(word.casefold() in text for word in words)


def _unix(moment: float | None) -> int | None:
    return None if moment is None else int(moment)


def _new_video_id() -> str:
    return "video_" + secrets.token_hex(24)
