"""xAI's Grok Imagine video API: ``/videos/generations``, then ``/videos/{request_id}``.

``base_url`` is ``https://api.x.ai/v1``; every call carries ``Authorization: Bearer``. A
create is JSON ``{model, prompt, duration, aspect_ratio, resolution, image: {url}}`` (an
upload goes as a data URL) and answers ``{request_id}``, the upstream id. A poll answers
``status`` ``pending`` until ``done`` (LiteLLM also maps ``expired`` and ``failed``); one word
covers queueing and rendering, so ``pending`` counts as rendering and its progress is
estimated (``providers.tasks``). Some replies leave ``status`` out once a ``video`` is there;
both readings are taken (a video with a URL and no status is done).

``done`` with ``video.respect_moderation: false`` is **output moderation**; ``done`` with a
``video.url`` is completed. A failure's ``error`` is read as a string or an object (which one
xAI sends is unconfirmed). ``usage.cost_in_usd_ticks`` (10^10 ticks to the dollar) is recorded
on the attempt. A refusal at submit carries only a reason string; moderation is read from its
words (``TaskProvider.translate_status``).

The video is a plain GET of ``video.url`` on xAI's CDN, without our key (it is not our API
origin). Cannot: remix, delete or list (none in the API), 480p (vendors disagree on its
pixel size), 1080p on the base model (configure ``sizes`` for the models that have it).
The probe lists models.
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

TICKS_PER_USD = 10_000_000_000
WITHHELD = "The video was withheld by xAI's moderation (respect_moderation false)."


class XaiVideoProvider(TaskProvider):
    kind = "xai"
    geometry = Geometry(
        resolutions=NAMED_RESOLUTIONS,
        ratios=NAMED_RATIOS,
        min_seconds=1,
        max_seconds=15,
    )
    render_estimate = 60.0  # xAI quotes about a minute for a short clip
    content_domains = ("*.x.ai",)

    async def create(self, request: RenderRequest) -> UpstreamJob:
        body = self.sized_body(request)
        image = reference_url(request.input_reference)
        if image is not None:
            body["image"] = {"url": image}
        url = self.url("/videos/generations")
        reply = await self.request_json("POST", url, json=body, operation="create")
        request_id = reply.get("request_id") if isinstance(reply, dict) else None
        return self.job(self.upstream_id(request_id), UpstreamStatus.IN_PROGRESS)

    async def get(self, upstream_id: str) -> UpstreamJob:
        return self.read_result(upstream_id, await self._result(upstream_id, "get"))

    async def delete(self, upstream_id: str) -> None:
        """Nothing to do: the API has no delete; results expire on their own."""

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        video = (await self._result(upstream_id, "content")).get("video")
        link = text(video.get("url")) if isinstance(video, dict) else None
        if link is None:
            raise BadUpstreamReply(f"request {upstream_id} has no video", provider=self.name)
        return await self.open_link(link, variant, range_header)

    async def probe(self) -> None:
        await self.request_json("GET", self.url("/models"), operation="probe")

    def read_result(self, upstream_id: str, reply: dict[str, Any]) -> UpstreamJob:
        found = reply.get("video")
        video: dict[str, Any] = found if isinstance(found, dict) else {}
        link = text(video.get("url"))
        word = reply.get("status") or ("done" if link is not None else None)
        if word is None:
            raise BadUpstreamReply("reply has neither a status nor a video", provider=self.name)
        status = normalise(word)
        if status is UpstreamStatus.QUEUED:
            status = UpstreamStatus.IN_PROGRESS  # "pending" covers the queue and the render
        usage = reply.get("usage")
        ticks = number(usage.get("cost_in_usd_ticks")) if isinstance(usage, dict) else None
        cost = None if ticks is None else ticks / TICKS_PER_USD
        if status is UpstreamStatus.COMPLETED:
            if video.get("respect_moderation") is False:
                return self.job(
                    upstream_id,
                    UpstreamStatus.FAILED,
                    error_message=WITHHELD,
                    moderated=True,
                    cost_usd=cost,
                )
            if link is None:  # the link tends to show up on a later read
                status = UpstreamStatus.IN_PROGRESS
        code, message = _error(reply.get("error"))
        if status is UpstreamStatus.FAILED and message is None:
            message = f"The request ended {word} at xAI."
        return self.job(upstream_id, status, error_code=code, error_message=message, cost_usd=cost)

    async def _result(self, upstream_id: str, operation: str) -> dict[str, Any]:
        reply = await self.request_json(
            "GET", self.url(f"/videos/{segment(upstream_id)}"), operation=operation
        )
        if not isinstance(reply, dict):
            raise BadUpstreamReply("reply is not an object", provider=self.name)
        return reply


def _error(error: object) -> tuple[str | None, str | None]:
    """(code, message) of a failure given as a string or as an object."""
    if isinstance(error, dict):
        code = error.get("code")
        return (None if code is None else str(code)), text(error.get("message"))
    return None, text(error)
