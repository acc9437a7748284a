"""OpenRouter's video API (``/api/v1/videos``): submit, poll, content by ``index``.

``base_url`` is ``https://openrouter.ai/api/v1``; every call carries ``Authorization: Bearer``.
A create is JSON only: ``duration`` (whole seconds), the size as ``resolution`` +
``aspect_ratio`` (the spec calls ``size`` interchangeable with that pair; we send the pair,
the vocabulary ``/videos/models`` lists capabilities in), and a first frame as
``frame_images[{frame_type: first_frame}]`` (an upload goes as a data URL). It answers 202
with the job. Statuses ``pending|in_progress|completed|failed|cancelled|expired`` go through
``providers.statuses``; there is no progress, so it is estimated (``providers.tasks``).

A failed job's ``error`` is a string; no moderation code for video is documented, so a failure
(or a 4xx at submit) whose words name moderation is moderation, and anything else is a render
failure the router may fail over. Both readings of the error are taken: a string, or an
object with ``message`` and ``code``. ``usage.cost`` (USD) is recorded on the attempt.

The video is ``GET /videos/{id}/content?index=0`` on OpenRouter itself, with our key. There is
no list, delete, cancel or remix: ``delete`` does nothing (OpenRouter's copy expires on its
own at ``expires_at``), and an unanswered create cannot be looked up (``providers.tasks``).
The probe reads a job id that cannot exist.
"""

from __future__ import annotations

from typing import Any

from providers.base import (
    BadUpstreamReply,
    ContentStream,
    RenderRequest,
    UpstreamJob,
    UpstreamStatus,
)
from providers.http import segment
from providers.sizes import NAMED_RATIOS, NAMED_RESOLUTIONS, Geometry
from providers.statuses import normalise
from providers.tasks import TaskProvider, number, reference_url, text

PROBE_JOB_ID = "gen-vid-0000000000-probe0000000000000000"


class OpenRouterProvider(TaskProvider):
    kind = "openrouter"
    geometry = Geometry(
        resolutions=NAMED_RESOLUTIONS,
        ratios=NAMED_RATIOS,
        min_seconds=1,
        max_seconds=60,
    )
    render_estimate = 105.0  # a 5 s clip took a median 105 s through a relay of it (field 6)
    content_domains = ("*.openrouter.ai",)

    async def create(self, request: RenderRequest) -> UpstreamJob:
        body = self.sized_body(request)
        image = reference_url(request.input_reference)
        if image is not None:
            body["frame_images"] = [
                {"type": "image_url", "image_url": {"url": image}, "frame_type": "first_frame"}
            ]
        reply = await self.request_json("POST", self.url("/videos"), json=body, operation="create")
        return self.read_job(reply)

    async def get(self, upstream_id: str) -> UpstreamJob:
        url = self.url(f"/videos/{segment(upstream_id)}")
        reply = await self.request_json("GET", url, operation="get")
        return self.read_job(reply)

    async def delete(self, upstream_id: str) -> None:
        """Nothing to do: OpenRouter has no delete; its copy expires at ``expires_at``."""

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        return await self.open_link(
            self.url(f"/videos/{segment(upstream_id)}/content?index=0"), variant, range_header
        )

    async def probe(self) -> None:
        await self.probe_absent(self.url(f"/videos/{PROBE_JOB_ID}"))

    def read_job(self, reply: Any) -> UpstreamJob:
        """Read a ``VideoGenerationResponse``; without an id and a status it is broken."""
        if not isinstance(reply, dict) or not text(reply.get("id")) or "status" not in reply:
            raise BadUpstreamReply("reply is not a video generation job", provider=self.name)
        status = normalise(reply["status"])
        error = reply.get("error")
        if isinstance(error, dict):
            code, message = error.get("code"), text(error.get("message"))
        else:
            code, message = None, text(error)
        if status is UpstreamStatus.FAILED and message is None:
            message = f"The job ended {reply['status']} on OpenRouter."
        usage = reply.get("usage")
        return self.job(
            self.upstream_id(reply["id"]),
            status,
            error_code=None if code is None else str(code),
            error_message=message,
            expires_at=number(reply.get("expires_at")),
            cost_usd=number(usage.get("cost")) if isinstance(usage, dict) else None,
        )
