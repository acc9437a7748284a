"""The simulated upstream's fal queue API, mounted at ``/fal``::

    POST /{model path}                              submit the model's inputs   Key auth
    GET  /{owner}/{app}/requests/{id}/status        IN_QUEUE|IN_PROGRESS|COMPLETED
    GET  /{owner}/{app}/requests/{id}               the result: {"video": {"url", ...}}
    PUT  /{owner}/{app}/requests/{id}/cancel        202, or 400 once it has finished

Every call needs ``Authorization: Key <key>``. Inputs are read under the names most fal video
models use (``prompt``, ``duration`` as 8, "8" or "8s", ``aspect_ratio``, ``resolution``,
``image_url``). A failed render completes with ``error`` and ``error_type`` on its status; an
output-moderated one completes, and its result is the 422 ``content_policy_violation`` list,
which is also how a refused submit answers. Other errors are ``{"detail": <message>}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from aiohttp import web

from providers.simulator.http import ApiError, json_response, read_prompt
from providers.simulator.jobs import CreateParams, Fault, RenderState, SimulatedJob, VideoStatus
from providers.simulator.tasks import MODERATION, TaskDialect, size_of, whole_seconds

PREFIX = "/fal"
_STATUS = {
    VideoStatus.QUEUED: "IN_QUEUE",
    VideoStatus.IN_PROGRESS: "IN_PROGRESS",
    VideoStatus.COMPLETED: "COMPLETED",
    VideoStatus.FAILED: "COMPLETED",
}


class FalApi(TaskDialect):
    def routes(self, router: web.UrlDispatcher) -> None:
        base = "/{owner}/{app}/requests/{request_id}"
        router.add_get(f"{base}/status", self.status)
        router.add_get(base, self.result)
        router.add_put(f"{base}/cancel", self.cancel)
        router.add_post("/{model:.+}", self.submit)

    def check_key(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Key" or not self.key_matches(token):
            raise ApiError(401, "No user found for Key ID and Secret.")

    def error_response(self, error: ApiError) -> web.Response:
        if error.code != MODERATION:
            return json_response(
                {"detail": error.message}, status=error.status, headers=error.headers
            )
        field = "image_url" if error.param == "input_reference" else "prompt"
        return json_response({"detail": [_violation(field, error.message)]}, status=422)

    async def submit(self, request: web.Request) -> web.Response:
        params = _parse(await self.read_create(request), request.match_info["model"])
        job = await self.create(params, str(uuid.uuid4()))
        owner, app = job.model.split("/")[:2]
        root = f"{request.url.origin()}{PREFIX}/{owner}/{app}/requests/{job.id}"
        return json_response(
            {
                "request_id": job.id,
                "status_url": f"{root}/status",
                "response_url": root,
                "cancel_url": f"{root}/cancel",
                "queue_position": 0,
            }
        )

    async def status(self, request: web.Request) -> web.Response:
        job, state = self._request(request)
        body: dict[str, object] = {"status": _STATUS[state.status], "queue_position": 0}
        if state.error is not None and job.fault is not Fault.OUTPUT_MODERATION:
            body["error"], body["error_type"] = state.error.message, "runner_disconnected"
        return json_response(body)

    async def result(self, request: web.Request) -> web.Response:
        job, state = self._request(request)
        if not state.status.finished:
            raise ApiError(400, "Request is still in progress.")
        if state.error is not None:
            if job.fault is Fault.OUTPUT_MODERATION:
                return json_response(
                    {"detail": [_violation("output", state.error.message)]}, status=422
                )
            raise ApiError(500, state.error.message)
        self.table.stats.content_downloads += 1
        video = {
            "url": self.file_link(request, job),
            "content_type": "video/mp4",
            "file_name": f"{job.id}.mp4",
            "file_size": self.table.settings.video_bytes,
        }
        return json_response({"video": video, "seed": 42})

    async def cancel(self, request: web.Request) -> web.Response:
        self.table.stats.deletes += 1
        _, state = self._request(request)
        if state.status.finished:
            return json_response({"status": "ALREADY_COMPLETED"}, status=400)
        return json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    def _request(self, request: web.Request) -> tuple[SimulatedJob, RenderState]:
        job, state = self.find(request.match_info["request_id"])
        if job.model.split("/")[:2] != [request.match_info["owner"], request.match_info["app"]]:
            raise ApiError(404, "Request not found.")
        return job, state


def _violation(field: str, message: str) -> dict[str, object]:
    return {
        "loc": ["body", field],
        "msg": message,
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
        "input": None,
        "ctx": {"categories": ["model_moderated"]},
    }


def _parse(fields: Mapping[str, object], model: str) -> CreateParams:
    duration = fields.get("duration", 5)
    if isinstance(duration, str):
        duration = duration.removesuffix("s")
    image = fields.get("image_url")
    return CreateParams(
        prompt=read_prompt(fields),
        model=model,
        size=size_of(fields.get("resolution", "720p"), fields.get("aspect_ratio", "16:9")),
        seconds=whole_seconds(duration, "duration", 1, 20),
        input_reference=image if isinstance(image, str) else None,
    )
