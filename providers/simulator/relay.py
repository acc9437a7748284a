"""The simulated upstream's relay dialect: new-api's task API and the CDN link it hands out.

Owns the relay's handlers and gate over the shared ``JobTable``::

    /v2/videos/generations...   the relay task dialect   Authorization: Bearer <key>
    /files/{id}.mp4             the relay's CDN link     no auth

A relay create takes a JSON body only, sizes a video by ``aspect_ratio`` and ``hd``, and
answers with a uuid4 ``task_id``; its task reports relay status words and a percent string.
Errors use new-api's task error ``{"code", "message", "data": null}``; the CDN link answers
errors with a bare status. The routes themselves are laid out by ``providers.simulator.server``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from providers.simulator.http import (
    ApiError,
    check_bearer,
    invalid,
    json_response,
    read_choice,
    read_fields,
    read_prompt,
    unix_seconds,
)
from providers.simulator.jobs import CreateParams, JobTable, VideoStatus
from providers.simulator.media import Variant, make_asset, send_asset

_RELAY_DURATIONS = ("4", "8", "10", "12", "15", "25")
_RELAY_SIZES = {
    ("16:9", False): "1280x720",
    ("9:16", False): "720x1280",
    ("16:9", True): "1792x1024",
    ("9:16", True): "1024x1792",
}
_RELAY_STATUS = {
    VideoStatus.QUEUED: "NOT_START",
    VideoStatus.IN_PROGRESS: "IN_PROGRESS",
    VideoStatus.COMPLETED: "SUCCESS",
    VideoStatus.FAILED: "FAILURE",
}


class RelayApi:
    """The relay's task handlers and gate, and the CDN link its finished tasks point at."""

    def __init__(self, table: JobTable, *, key_matches: Callable[[str], bool]) -> None:
        self._table = table
        self._key_matches = key_matches

    @web.middleware
    async def gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check_bearer(request, self._key_matches)
            return await handler(request)
        except ApiError as error:
            body = {"code": error.code or error.error_type, "message": error.message, "data": None}
            return json_response(body, status=error.status, headers=error.headers)

    async def create(self, request: web.Request) -> web.Response:
        self._table.stats.creates_received += 1
        fields, form = await read_fields(request)
        if form:
            raise ApiError(400, "The request body must be JSON.", code="invalid_request")
        job = self._table.create(_parse_relay(fields), job_id=str(uuid.uuid4()))
        await self._table.hold_reply(job)
        return json_response({"task_id": job.id})

    async def retrieve(self, request: web.Request) -> web.Response:
        self._table.stats.gets += 1
        task_id = request.match_info["task_id"]
        job = self._table.jobs.get(task_id)
        if job is None:
            raise ApiError(404, f"Task '{task_id}' does not exist.", code="task_not_exist")
        state = self._table.state(job)
        output = request.url.origin().join(URL(f"/files/{job.id}.mp4"))
        return json_response(
            {
                "task_id": job.id,
                "platform": "sora",
                "action": "generate",
                "status": _RELAY_STATUS[state.status],
                "progress": f"{state.progress}%",
                "fail_reason": state.error.relay_reason if state.error else "",
                "submit_time": int(job.created_at),
                "start_time": unix_seconds(state.started_at),
                "finish_time": unix_seconds(state.finished_at),
                "data": {"output": str(output)} if state.status is VideoStatus.COMPLETED else None,
            }
        )

    async def file(self, request: web.Request) -> web.StreamResponse:
        """The CDN link: the MP4 of a completed task, without credentials."""
        self._table.stats.content_downloads += 1
        job = self._table.jobs.get(request.match_info["video_id"])
        if job is None:
            raise web.HTTPNotFound()
        try:
            self._table.check_downloadable(job)
        except ApiError as error:  # a CDN has no error envelope, only a status
            raise web.HTTPNotFound(text=error.message) from error
        video_bytes = self._table.settings.video_bytes
        return await send_asset(
            request,
            make_asset(job.id, Variant.VIDEO, video_bytes, size=job.size, seconds=int(job.seconds)),
        )


def _parse_relay(fields: Mapping[str, object]) -> CreateParams:
    prompt = read_prompt(fields)
    model = fields.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "'model' is required.", "invalid_request")
    hd = fields.get("hd", False)
    images = fields.get("images", [])
    if not isinstance(hd, bool):
        raise invalid("hd", "'hd' must be a boolean.", "invalid_request")
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise invalid("images", "'images' must be a list of image URLs.", "invalid_request")
    aspect_ratio = read_choice(fields, "aspect_ratio", ("16:9", "9:16"), "16:9")
    return CreateParams(
        prompt=prompt,
        model=model,
        size=_RELAY_SIZES[aspect_ratio, hd],
        seconds=read_choice(fields, "duration", _RELAY_DURATIONS, "10"),
        input_reference=images[0] if images else None,  # relays use only the first image
    )
