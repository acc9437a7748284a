"""The OpenAI Videos wire format (``/v1/videos``), as served by OpenAI-compatible gateways.

``base_url`` is what a user would hand the ``openai`` SDK (it ends in ``/v1``). Creates go as
JSON (the spec allows both; JSON is cheaper) unless an image was uploaded: then multipart, so
the file passes through as an ``input_reference`` part. A URL reference goes as JSON
``{"image_url": ...}``, the only form JSON allows.
Azure reuses everything here and changes only URLs and auth (``providers.azure``).

``find`` looks for a render whose create was sent but never answered in the video list:
newest first, back to the send time less ``CLOCK_SKEW``, matching prompt, model, size and
seconds. Which match to claim (ids our other jobs hold are not free) is the caller's choice.
``list_page`` reads one page of that list as status reads, for the poller's list sweeps
(``router.jobs.sweep``); how far to walk is the caller's business.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from providers.base import (
    CLOCK_SKEW,
    BadUpstreamReply,
    ContentStream,
    ListPage,
    RenderRequest,
    Unsearchable,
    UpstreamJob,
)
from providers.http import HttpProvider, segment
from providers.statuses import normalise, reported_progress

__all__ = ["CLOCK_SKEW", "OpenAIVideosProvider"]


class OpenAIVideosProvider(HttpProvider):
    kind = "openai"
    lists = True

    async def create(self, request: RenderRequest) -> UpstreamJob:
        ref = request.input_reference
        fields = {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": str(request.seconds),
            "size": request.size,
        }
        if ref is None or ref.data is None:
            # JSON is cheaper to build and parse than a form; files need multipart.
            body: Any = (
                fields if ref is None else {**fields, "input_reference": {"image_url": ref.url}}
            )
            reply = await self.request_json(
                "POST", self.url("/videos"), json=body, operation="create"
            )
        else:
            form = aiohttp.FormData()
            for key, value in fields.items():
                form.add_field(key, value)
            form.add_field(
                "input_reference", ref.data, filename=ref.filename, content_type=ref.content_type
            )
            reply = await self.request_json(
                "POST", self.url("/videos"), data=form, operation="create"
            )
        return self.video_to_job(reply)

    async def get(self, upstream_id: str) -> UpstreamJob:
        reply = await self.request_json(
            "GET", self.url(f"/videos/{segment(upstream_id)}"), operation="get"
        )
        return self.video_to_job(reply)

    async def remix(self, upstream_id: str, prompt: str) -> UpstreamJob:
        reply = await self.request_json(
            "POST",
            self.url(f"/videos/{segment(upstream_id)}/remix"),
            json={"prompt": prompt},
            operation="remix",
        )
        return self.video_to_job(reply)

    async def delete(self, upstream_id: str) -> None:
        await self.request_json(
            "DELETE", self.url(f"/videos/{segment(upstream_id)}"), operation="delete"
        )

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        return await self.open_stream(
            self.url(f"/videos/{segment(upstream_id)}/content"),
            range_header=range_header,
            params={**self.query(), "variant": variant},
        )

    async def probe(self) -> None:
        await self.request_json(
            "GET", self.url("/videos"), params={"limit": "1"}, operation="probe"
        )

    async def find(self, request: RenderRequest, since: float) -> list[UpstreamJob]:
        """Videos that may be ``request`` as sent at ``since``, nearest in time first.

        A match has the same prompt, model, size and seconds and was created from
        ``since - CLOCK_SKEW`` to ``since + timeout + CLOCK_SKEW`` (the create's answer was due
        by then). ``Unsearchable`` when a video that matches otherwise has no ``prompt`` (older
        upstreams leave it out) and nothing matches fully, or when the window holds more
        videos than ``read_list`` reads.
        """
        earliest = since - CLOCK_SKEW
        latest = since + self.timeout + CLOCK_SKEW

        def enough(page: list[dict[str, Any]]) -> bool:
            times = [t for t in map(_created_at, page) if t is not None]
            return bool(times) and min(times) < earliest

        videos = await self.read_list(self.url("/videos"), operation="find", enough=enough)
        matches: list[tuple[float, UpstreamJob]] = []
        unnamed = False
        for video in videos:
            created = _created_at(video)
            if created is None or not earliest <= created <= latest:
                continue
            if (video.get("model"), video.get("size"), str(video.get("seconds"))) != (
                request.model,
                request.size,
                str(request.seconds),
            ):
                continue
            prompt = video.get("prompt")
            if prompt is None:
                unnamed = True
            elif prompt == request.prompt:
                matches.append((abs(created - since), self.video_to_job(video)))
        if not matches and unnamed:
            raise Unsearchable(
                "find: the video list does not show prompts", provider=self.name, sent=False
            )
        matches.sort(key=lambda match: match[0])
        return [job for _, job in matches]

    async def list_page(self, after: str | None) -> ListPage:
        """One page of the video list, newest first; entries that are not Video objects are
        left out (a job of ours among them is simply not seen on this page)."""
        entries, next_after = await self.read_page(
            self.url("/videos"), operation="list", after=after
        )
        jobs: list[UpstreamJob] = []
        for entry in entries:
            try:
                jobs.append(self.video_to_job(entry))
            except BadUpstreamReply:
                continue
        times = [t for t in map(_created_at, entries) if t is not None]
        return ListPage(jobs=jobs, oldest=min(times, default=None), next_after=next_after)

    def video_to_job(self, reply: Any) -> UpstreamJob:
        """Read a Video object; anything without an id and a status is a broken upstream."""
        if not isinstance(reply, dict) or not reply.get("id") or "status" not in reply:
            raise BadUpstreamReply("reply is not a Video object", provider=self.name)
        found = reply.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        raw = str(reply["status"])
        status = normalise(raw)
        return UpstreamJob(
            upstream_id=self.upstream_id(reply["id"]),
            status=status,
            progress=reported_progress(status, reply.get("progress")),
            error_code=self.upstream_text(error.get("code"), 64),
            error_message=self.upstream_text(error.get("message")),
            expires_at=_number_or_none(reply.get("expires_at")),
        )


def _number_or_none(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _created_at(video: dict[str, Any]) -> float | None:
    return _number_or_none(video.get("created_at"))
