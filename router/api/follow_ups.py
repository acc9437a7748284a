"""Edits and extensions (``POST /v1/videos/edits``, ``POST /v1/videos/extensions``).

``video`` names the source: ``{"id": ...}`` of a completed job of the caller's (JSON, or the
form field ``video[id]``), or an uploaded MP4 (a multipart file part, as the SDK sends it).

- A job of ours is edited or extended on the provider that holds its render, like a remix
  (``Dispatcher.follow_up``): no other provider has it.
- An upload is a new render any provider that can edit (or extend) may take, with the usual
  failover at submit and after acceptance: the upload is kept like a reference image and sent
  again to the next provider. Its length and frame size are read from the MP4's boxes
  (``providers.mp4``) and become the job's ``seconds`` and ``size``.

Extensions follow OpenAI's documented limits: a segment of ``MIN_SEGMENT`` to
``MAX_SEGMENT`` seconds (and one the model's catalogue entry renders), at most
``MAX_EXTENSIONS`` in a chain, ``MAX_TOTAL_SECONDS`` in all; each breach is a 400 naming the
field. The job's ``seconds`` is the stitched total, and only the segment is billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from providers.base import InputReference, Operation, SourceVideo
from providers.mp4 import probe
from router import appkeys as keys
from router.api.bodies import read_create_body
from router.api.openai import video_body
from router.api.requests import check_prompt, reject_unknown
from router.config.model import Config
from router.errors import InvalidRequest, NotFound
from router.jobs.idempotency import key_from
from router.jsonio import JSON_HEADERS
from router.records.job import Job
from router.records.request import CreateRequest

MIN_SEGMENT = 4
MAX_SEGMENT = 20
MAX_EXTENSIONS = 6
MAX_TOTAL_SECONDS = 120
EDIT_FIELDS = frozenset({"prompt", "video", "video[id]", "model"})
EXTEND_FIELDS = EDIT_FIELDS | {"seconds"}


@dataclass(slots=True, frozen=True)
class Source:
    """The video a follow-up starts from: a job of the caller's, or an upload read as an MP4."""

    job: Job | None
    upload: SourceVideo | None
    model: str
    size: str
    seconds: int
    extensions: int  # extension steps already in its chain


async def edit_video(request: web.Request) -> web.Response:
    return await _follow_up(request, Operation.EDIT, EDIT_FIELDS)


async def extend_video(request: web.Request) -> web.Response:
    return await _follow_up(request, Operation.EXTEND, EXTEND_FIELDS)


async def _follow_up(
    request: web.Request, operation: Operation, known: frozenset[str]
) -> web.Response:
    idempotency_key = key_from(request.headers)
    fields = await read_create_body(request)
    reject_unknown(fields, known)
    config = request.app[keys.CONFIG].current
    owner = request[keys.CLIENT_KEY]
    prompt = check_prompt(fields.get("prompt"), config.server.max_prompt_chars)
    source = await _source(request, config, fields)
    owner.check_model(source.model)
    seconds, segment, extensions = source.seconds, None, source.extensions
    if operation is Operation.EXTEND:
        segment = _segment(config, source.model, fields.get("seconds"))
        seconds, extensions = source.seconds + segment, source.extensions + 1
        _check_chain(seconds, extensions)
    create = CreateRequest(
        source.model,
        prompt,
        source.size,
        seconds,
        operation=operation,
        source=source.upload,
        segment_seconds=segment,
        extensions=extensions,
        source_video_id=None if source.job is None else source.job.id,
    )
    dispatcher = request.app[keys.DISPATCHER]
    held = source.job
    job = await request.app[keys.IDEMPOTENCY].run(
        owner.name,
        idempotency_key,
        create,
        lambda claim, job_id: (
            dispatcher.create(owner.name, create, claim, job_id)
            if held is None
            else dispatcher.follow_up(owner.name, held, create, claim, job_id)
        ),
    )
    return web.Response(body=video_body(job), headers=JSON_HEADERS)


async def _source(request: web.Request, config: Config, fields: dict[str, Any]) -> Source:
    video, video_id = fields.get("video"), fields.get("video[id]")
    if isinstance(video, dict):
        if set(video) != {"id"} or video_id is not None:
            raise _bad_video()
        video_id, video = video["id"], None
    if video is None and video_id is None:
        raise InvalidRequest(
            "'video' is required: {\"id\": ...} of a completed video, or an uploaded MP4.",
            param="video",
            code="missing_required_parameter",
        )
    if video is not None and video_id is not None:
        raise _bad_video()
    model = fields.get("model")
    if video_id is not None:
        if not isinstance(video_id, str):
            raise _bad_video()
        job = await request.app[keys.VIEWS].read(video_id)
        if job is None or job.owner != request[keys.CLIENT_KEY].name:
            raise NotFound(f"No video found with id '{video_id}'.", param="video")
        if model is not None and model != job.model:
            raise InvalidRequest(
                f"Video '{video_id}' was rendered by '{job.model}'; leave 'model' out or name it.",
                param="model",
                code="invalid_value",
            )
        return Source(job, None, job.model, job.size, job.seconds, job.extensions)
    if not isinstance(video, InputReference) or video.data is None:
        raise _bad_video()
    return _upload(config, video, model)


def _upload(config: Config, video: InputReference, model: object) -> Source:
    name = config.default_model if model is None else model
    if not isinstance(name, str) or name not in config.models:
        raise InvalidRequest(
            f"Unknown model {name!r}. Available models: {', '.join(config.models)}.",
            param="model",
            code="model_not_found",
        )
    info = probe(video.data or b"")
    if info is None:
        raise InvalidRequest(
            "The uploaded video is not an MP4 whose length and frame size can be read.",
            param="video",
            code="invalid_video",
        )
    spec = config.models[name]
    if info.size not in spec.sizes:
        raise InvalidRequest(
            f"The uploaded video is {info.size}; {name} renders {', '.join(spec.sizes)}.",
            param="video",
            code="invalid_video",
        )
    upload = SourceVideo(data=video.data, filename=video.filename, content_type=video.content_type)
    return Source(None, upload, name, info.size, info.seconds, 0)


def _segment(config: Config, model: str, value: object) -> int:
    """The new segment's seconds: 4 to 20, and a length the model's catalogue renders."""
    allowed = [s for s in config.models[model].seconds if MIN_SEGMENT <= s <= MAX_SEGMENT]
    text = str(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if value is None:
        raise InvalidRequest(
            "'seconds' (the new segment's length) is required.",
            param="seconds",
            code="missing_required_parameter",
        )
    if not text.strip().isdigit() or int(text) not in allowed:
        raise InvalidRequest(
            f"Invalid value for 'seconds': {value!r}. An extension segment of {model} is one of "
            f"{', '.join(repr(str(s)) for s in allowed)} (4 to 20 seconds).",
            param="seconds",
            code="invalid_value",
        )
    return int(text)


def _check_chain(total: int, extensions: int) -> None:
    if extensions > MAX_EXTENSIONS:
        raise InvalidRequest(
            f"A video can be extended at most {MAX_EXTENSIONS} times; this one already was.",
            param="video",
            code="too_many_extensions",
        )
    if total > MAX_TOTAL_SECONDS:
        raise InvalidRequest(
            f"An extended video is at most {MAX_TOTAL_SECONDS} seconds; this would be {total}.",
            param="seconds",
            code="video_too_long",
        )


def _bad_video() -> InvalidRequest:
    return InvalidRequest(
        "Invalid 'video': give {\"id\": ...} of a completed video, or upload an MP4 file.",
        param="video",
        code="invalid_type",
    )


ROUTES = (
    web.post("/v1/videos/edits", edit_video),
    web.post("/v1/videos/extensions", extend_video),
)
