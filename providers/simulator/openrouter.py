"""The simulated upstream's OpenRouter video API, mounted at ``/openrouter/api/v1``::

    POST /videos                       JSON create; 202 with the job          Bearer
    GET  /videos/{id}                  the job                                Bearer
    GET  /videos/{id}/content?index=0  the MP4                                Bearer
    GET  /videos/models                the capability list                    none

Jobs report ``pending|in_progress|completed|failed`` and no progress; a failed job's
``error`` is a string (moderation says so in words, as no code is documented), and a completed
one carries ``usage.cost`` at $0.10 per second. Errors are OpenRouter's
``{"error": {"code": <int>, "message", "metadata"}}``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from aiohttp import web

from providers.simulator.http import ApiError, json_response, read_prompt
from providers.simulator.jobs import CreateParams, SimulatedJob, VideoStatus
from providers.simulator.media import Variant, make_asset, send_asset
from providers.simulator.tasks import TaskDialect, required_text, size_of, whole_seconds
from providers.sizes import NAMED_RATIOS, NAMED_RESOLUTIONS, NAMED_SIZES

PREFIX = "/openrouter/api/v1"
COST_PER_SECOND = 0.10
_STATUS = {
    VideoStatus.QUEUED: "pending",
    VideoStatus.IN_PROGRESS: "in_progress",
    VideoStatus.COMPLETED: "completed",
    VideoStatus.FAILED: "failed",
}


class OpenRouterApi(TaskDialect):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/videos", self.create_video)
        router.add_get("/videos/models", self.models)
        router.add_get("/videos/{job_id}", self.retrieve)
        router.add_get("/videos/{job_id}/content", self.content)

    def check_key(self, request: web.Request) -> None:
        if request.path != f"{PREFIX}/videos/models":  # the model list needs no key
            super().check_key(request)

    def error_response(self, error: ApiError) -> web.Response:
        body = {"error": {"code": error.status, "message": error.message, "metadata": None}}
        return json_response(body, status=error.status, headers=error.headers)

    async def create_video(self, request: web.Request) -> web.Response:
        params = _parse(await self.read_create(request))
        job = await self.create(params, f"gen-vid-{int(time.time())}-{secrets.token_hex(10)}")
        return json_response(self._job(job), status=202)

    async def retrieve(self, request: web.Request) -> web.Response:
        job, _ = self.find(request.match_info["job_id"])
        return json_response(self._job(job))

    async def content(self, request: web.Request) -> web.StreamResponse:
        job, _ = self.find(request.match_info["job_id"])
        self.table.stats.content_downloads += 1
        if request.query.get("index", "0") != "0":
            raise ApiError(404, "No video at that index.")
        self.table.check_downloadable(job)
        video_bytes = self.table.settings.video_bytes
        asset = make_asset(
            job.id, Variant.VIDEO, video_bytes, size=job.size, seconds=int(job.seconds)
        )
        return await send_asset(request, asset)

    async def models(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "data": [
                    {
                        "id": "google/veo-3.1",
                        "supported_resolutions": sorted(NAMED_RESOLUTIONS),
                        "supported_aspect_ratios": sorted(NAMED_RATIOS),
                        "supported_durations": [4, 6, 8],
                        "pricing_skus": {"per-video-second": f"{COST_PER_SECOND:.2f}"},
                    }
                ]
            }
        )

    def _job(self, job: SimulatedJob) -> dict[str, object]:
        state = self.table.state(job)
        body: dict[str, object] = {
            "id": job.id,
            "polling_url": f"{PREFIX}/videos/{job.id}",
            "status": _STATUS[state.status],
        }
        if state.error is not None:
            body["error"] = state.error.message
        if state.status is VideoStatus.COMPLETED:
            body["unsigned_urls"] = [f"{PREFIX}/videos/{job.id}/content?index=0"]
            body["usage"] = {"cost": COST_PER_SECOND * int(job.seconds), "is_byok": False}
            body["expires_at"] = None if state.expires_at is None else int(state.expires_at)
        return body


def _parse(fields: Mapping[str, object]) -> CreateParams:
    size = fields.get("size")
    if not isinstance(size, str):
        size = size_of(fields.get("resolution"), fields.get("aspect_ratio"))
    elif size not in NAMED_SIZES.values():
        raise ApiError(400, f"Unsupported size {size}.", param="size")
    reference = None
    frames = fields.get("frame_images")
    if isinstance(frames, list) and frames and isinstance(frames[0], Mapping):
        image = frames[0].get("image_url")
        reference = image.get("url") if isinstance(image, Mapping) else None
    return CreateParams(
        prompt=read_prompt(fields),
        model=required_text(fields, "model"),
        size=size,
        seconds=whole_seconds(fields.get("duration", 8), "duration", 1, 60),
        input_reference=reference if isinstance(reference, str) else None,
    )
