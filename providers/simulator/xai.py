"""The simulated upstream's xAI video API (Grok Imagine), mounted at ``/xai/v1``::

    POST /videos/generations     JSON create; answers {request_id}      Bearer
    GET  /videos/{request_id}    the result so far                      Bearer
    GET  /models                 the model list (the probe)             Bearer

A request is ``pending`` until ``done``; a done one has ``video.url`` (the credential-free
MP4 link), ``video.respect_moderation`` (false, and no URL, for output moderation) and
``usage.cost_in_usd_ticks`` at $0.05 per second. A failed render is ``failed`` with an
``error`` string. Errors are xAI's ``{"code": <what>, "error": <message>}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from aiohttp import web

from providers.simulator.http import ApiError, json_response, read_prompt
from providers.simulator.jobs import CreateParams, Fault, VideoStatus
from providers.simulator.tasks import TaskDialect, required_text, size_of, whole_seconds

TICKS_PER_SECOND = 500_000_000  # $0.05 per second of video, in 10^-10 USD ticks


class XaiApi(TaskDialect):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/videos/generations", self.generate)
        router.add_get("/videos/{request_id}", self.result)
        router.add_get("/models", self.models)

    def error_response(self, error: ApiError) -> web.Response:
        body = {"code": error.code or error.error_type, "error": error.message}
        return json_response(body, status=error.status, headers=error.headers)

    async def generate(self, request: web.Request) -> web.Response:
        params = _parse(await self.read_create(request))
        job = await self.create(params, str(uuid.uuid4()))
        return json_response({"request_id": job.id})

    async def result(self, request: web.Request) -> web.Response:
        job, state = self.find(request.match_info["request_id"])
        if not state.status.finished:
            return json_response({"status": "pending"})
        if state.status is VideoStatus.FAILED and job.fault is not Fault.OUTPUT_MODERATION:
            assert state.error is not None
            return json_response({"status": "failed", "error": state.error.message})
        moderated = job.fault is Fault.OUTPUT_MODERATION
        video = {
            "url": "" if moderated else self.file_link(request, job),
            "duration": int(job.seconds),
            "respect_moderation": not moderated,
        }
        return json_response(
            {
                "status": "done",
                "model": job.model,
                "video": video,
                "usage": {"cost_in_usd_ticks": TICKS_PER_SECOND * int(job.seconds)},
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return json_response({"data": [{"id": "grok-imagine-video", "object": "model"}]})


def _parse(fields: Mapping[str, object]) -> CreateParams:
    image = fields.get("image")
    reference = image.get("url") if isinstance(image, Mapping) else None
    return CreateParams(
        prompt=read_prompt(fields),
        model=required_text(fields, "model"),
        size=size_of(fields.get("resolution", "720p"), fields.get("aspect_ratio", "16:9")),
        seconds=whole_seconds(fields.get("duration", 6), "duration", 1, 15),
        input_reference=reference if isinstance(reference, str) else None,
    )
