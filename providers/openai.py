"""The OpenAI Videos wire format (``/v1/videos``), as served by OpenAI-compatible gateways.

``base_url`` is what a user would hand the ``openai`` SDK (it ends in ``/v1``). Creates, edits
and extensions go as JSON (the spec allows both; JSON is cheaper) unless a file goes along (an
uploaded image as ``input_reference``, an uploaded source video as ``video``): then multipart.
A URL reference goes as JSON ``{"image_url": ...}``, the only form JSON allows; a source held
upstream as ``video: {"id": ...}``; characters as ``characters: [{"id": ...}]`` (OpenAI's
final surface took them beside the spec, as the SDK sends ``extra_body``). A character is
uploaded with ``POST /videos/characters`` (multipart ``name`` and ``video``). The format has no
cancel.
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
    SourceVideo,
    Unsearchable,
    UpstreamJob,
)
from providers.http import HttpProvider, segment
from providers.statuses import normalise, reported_progress

__all__ = ["CLOCK_SKEW", "OpenAIVideosProvider"]


class OpenAIVideosProvider(HttpProvider):
    kind = "openai"
    lists = True
    features = frozenset({"remix", "edit", "extend", "characters"})

    async def create(self, request: RenderRequest) -> UpstreamJob:
        ref = request.input_reference
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": str(request.seconds),
            "size": request.size,
        }
        if request.characters:
            fields["characters"] = [{"id": c} for c in request.characters]
        upload: tuple[str, bytes, str, str] | None = None
        if ref is not None and ref.data is not None:
            upload = ("input_reference", ref.data, ref.filename, ref.content_type)
        elif ref is not None:
            fields["input_reference"] = {"image_url": ref.url}
        return await self._render("/videos", fields, upload, "create")

    async def edit(self, request: RenderRequest) -> UpstreamJob:
        fields: dict[str, Any] = {"prompt": request.prompt, "model": request.model}
        return await self._render("/videos/edits", *self._with_source(fields, request), "edit")

    async def extend(self, request: RenderRequest) -> UpstreamJob:
        fields: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "seconds": str(request.seconds),
        }
        return await self._render(
            "/videos/extensions", *self._with_source(fields, request), "extend"
        )

    async def create_character(self, name: str, clip: SourceVideo) -> str:
        form = aiohttp.FormData()
        form.add_field("name", name)
        form.add_field(
            "video", clip.data or b"", filename=clip.filename, content_type=clip.content_type
        )
        reply = await self.request_json(
            "POST", self.url("/videos/characters"), data=form, operation="characters"
        )
        found = reply.get("id") if isinstance(reply, dict) else None
        if not isinstance(found, str) or not found:
            raise BadUpstreamReply("character reply has no id", provider=self.name)
        return found

    @staticmethod
    def _with_source(
        fields: dict[str, Any], request: RenderRequest
    ) -> tuple[dict[str, Any], tuple[str, bytes, str, str] | None]:
        """``video`` as ``{"id"}`` of a render held here, or the uploaded file."""
        source = request.source
        if source is None:
            raise ValueError("an edit or extension needs a source video")
        if source.upstream_id is not None:
            return {**fields, "video": {"id": source.upstream_id}}, None
        return fields, ("video", source.data or b"", source.filename, source.content_type)

    async def _render(
        self,
        path: str,
        fields: dict[str, Any],
        upload: tuple[str, bytes, str, str] | None,
        operation: str,
    ) -> UpstreamJob:
        """POST a render: JSON (cheaper to build and parse) unless a file goes along, then
        multipart, with nested fields flattened the way the SDK flattens them
        (``characters[0][id]``, ``video[id]``)."""
        if upload is None:
            reply = await self.request_json(
                "POST", self.url(path), json=fields, operation=operation
            )
            return self.video_to_job(reply)
        form = aiohttp.FormData()
        for key, value in _flatten(fields):
            form.add_field(key, value)
        name, data, filename, content_type = upload
        form.add_field(name, data, filename=filename, content_type=content_type)
        reply = await self.request_json("POST", self.url(path), data=form, operation=operation)
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


def _flatten(fields: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Form fields of a JSON-shaped body: ``{"a": [{"id": "x"}]}`` -> ``a[0][id]=x``."""
    pairs: list[tuple[str, str]] = []
    for key, value in fields.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs.extend(_flatten(value, name))
        elif isinstance(value, list):
            pairs.extend(_flatten({str(i): item for i, item in enumerate(value)}, name))
        else:
            pairs.append((name, str(value)))
    return pairs


def _number_or_none(value: object) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _created_at(video: dict[str, Any]) -> float | None:
    return _number_or_none(video.get("created_at"))
