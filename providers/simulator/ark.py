"""The simulated upstream's Ark task API (Seedance), mounted at ``/ark/api/v3``::

    POST   /contents/generations/tasks        JSON create; answers {id}            Bearer
    GET    /contents/generations/tasks/{id}   the task                             Bearer
    DELETE /contents/generations/tasks/{id}   cancel a queued task, delete a done one

Tasks report ``queued|running|succeeded|failed`` (``cancelled`` once deleted while queued),
``content.video_url`` (the credential-free MP4 link) when succeeded, ``usage`` in tokens
(Ark's formula, seconds x width x height x 24 / 1024), and ``error: {code, message}`` when
failed, with ``OutputVideoSensitiveContentDetected`` for output moderation. Refusals use
Ark's codes too (``InputTextSensitiveContentDetected``, ``InputImageSensitiveContentDetected``)
in ``{"error": {code, message, param, type}}``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping

from aiohttp import web

from providers.simulator.http import ApiError, invalid, json_response
from providers.simulator.jobs import CreateParams, Fault, JobTable, SimulatedJob, VideoStatus
from providers.simulator.tasks import (
    MODERATION,
    TaskDialect,
    required_text,
    size_of,
    whole_seconds,
)
from providers.sizes import dimensions

_STATUS = {
    VideoStatus.QUEUED: "queued",
    VideoStatus.IN_PROGRESS: "running",
    VideoStatus.COMPLETED: "succeeded",
    VideoStatus.FAILED: "failed",
}


class ArkApi(TaskDialect):
    def __init__(self, table: JobTable, *, key_matches: Callable[[str], bool]) -> None:
        super().__init__(table, key_matches=key_matches)
        self.cancelled: set[str] = set()  # tasks deleted while still queued

    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/contents/generations/tasks", self.create_task)
        router.add_get("/contents/generations/tasks/{task_id}", self.task)
        router.add_delete("/contents/generations/tasks/{task_id}", self.delete_task)

    def error_response(self, error: ApiError) -> web.Response:
        code = error.code or error.error_type
        if code == MODERATION:
            image = error.param == "input_reference"
            code = f"Input{'Image' if image else 'Text'}SensitiveContentDetected"
        body = {"code": code, "message": error.message, "param": error.param or "", "type": ""}
        return json_response({"error": body}, status=error.status, headers=error.headers)

    async def create_task(self, request: web.Request) -> web.Response:
        params = _parse(await self.read_create(request))
        job = await self.create(
            params, f"cgt-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(4)}"
        )
        return json_response({"id": job.id})

    async def task(self, request: web.Request) -> web.Response:
        job, state = self.find(request.match_info["task_id"])
        status = "cancelled" if job.id in self.cancelled else _STATUS[state.status]
        body: dict[str, object] = {
            "id": job.id,
            "model": job.model,
            "status": status,
            "created_at": int(job.created_at),
            "duration": int(job.seconds),
        }
        if status == "succeeded":
            body["content"] = {"video_url": self.file_link(request, job)}
            body["usage"] = {"completion_tokens": _tokens(job), "total_tokens": _tokens(job)}
        elif state.error is not None and status == "failed":
            code = (
                "OutputVideoSensitiveContentDetected"
                if job.fault is Fault.OUTPUT_MODERATION
                else "InternalServiceError"
            )
            body["error"] = {"code": code, "message": state.error.message}
        return json_response(body)

    async def delete_task(self, request: web.Request) -> web.Response:
        self.table.stats.deletes += 1
        job, state = self.find(request.match_info["task_id"])
        if state.status is VideoStatus.IN_PROGRESS:
            raise ApiError(400, "A running task cannot be cancelled.", code="InvalidParameter")
        if state.status is VideoStatus.QUEUED:
            self.cancelled.add(job.id)
        else:
            del self.table.jobs[job.id]
        return json_response({})


def _tokens(job: SimulatedJob) -> int:
    width, height = dimensions(job.size)
    return int(job.seconds) * width * height * 24 // 1024


def _parse(fields: Mapping[str, object]) -> CreateParams:
    content = fields.get("content")
    if not isinstance(content, list) or not all(isinstance(c, Mapping) for c in content):
        raise invalid("content", "'content' must be a list of parts.")
    texts = [c.get("text") for c in content if c.get("type") == "text"]
    images = [c.get("image_url") for c in content if c.get("type") == "image_url"]
    prompt = texts[0] if texts and isinstance(texts[0], str) and texts[0].strip() else None
    if prompt is None:
        raise invalid("content", "A text part is required.", "missing_required_parameter")
    image = images[0] if images and isinstance(images[0], Mapping) else None
    reference = image.get("url") if image is not None else None
    return CreateParams(
        prompt=prompt,
        model=required_text(fields, "model"),
        size=size_of(fields.get("resolution", "720p"), fields.get("ratio", "16:9")),
        seconds=whole_seconds(fields.get("duration", 5), "duration", 2, 12),
        input_reference=reference if isinstance(reference, str) else None,
    )
