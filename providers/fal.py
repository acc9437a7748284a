"""fal.ai's queue API: submit to the model's queue path, status and result by request id,
cancel.

``base_url`` is ``https://queue.fal.run``; every call carries ``Authorization: Key <key>``.
Each model takes its own inputs, so a provider model's ``fields`` (``providers.fieldmap``) say
how a request becomes the model's input object; its ``upstream_model`` is the model's path
(``fal-ai/veo3.1/fast``). A create POSTs the inputs to ``/{model}`` and answers
``{request_id, status_url, response_url, cancel_url}``. Those URLs are not used: the upstream
id is ``{model}/requests/{request_id}`` and every URL is rebuilt from it on our ``base_url``
(fal serves requests under the app, the model path's first two parts), so a reply can never
send our key to another host.

A poll reads ``/status``: ``IN_QUEUE``, ``IN_PROGRESS`` (no progress: estimated,
``providers.tasks``), ``COMPLETED``. A completed request with an ``error`` failed; otherwise
its result is read, and the video URL found in it by the mapping's ``output`` path. A 422
whose ``detail`` lists a ``content_policy_violation`` is moderation: at submit the prompt stage
(the input stage when it points at the image field), as a completed request's result the
output stage. The video is on fal's CDN, fetched without our key. ``cancel`` asks fal to stop
a request (a finished one answers that it cannot, which changes nothing); ``delete`` does
nothing, as the queue API has none.

Cannot: remix, a list to look an unanswered create up in, the thumbnail or spritesheet.
The probe reads a request that cannot exist, under the first model's app.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from providers.base import (
    BadUpstreamReply,
    ContentStream,
    ProviderError,
    ProviderUnusable,
    Rejected,
    RenderRequest,
    UpstreamJob,
    UpstreamStatus,
)
from providers.fieldmap import FieldMap
from providers.sizes import Geometry
from providers.statuses import normalise
from providers.tasks import TaskProvider, moderation_refusal, text

MODEL_PATH = re.compile(r"[\w.-]+(/[\w.-]+)+")
REQUEST_ID = re.compile(r"[\w-]+")
PROBE_REQUEST_ID = "00000000-0000-4000-8000-000000000000"
POLICY = "content_policy_violation"


class FalQueueProvider(TaskProvider):
    kind = "fal"
    geometry = Geometry(any_size=True)  # per model: ``FieldMap.geometry``
    render_estimate = 120.0  # fal's video models quote one to three minutes a clip
    cancels = True
    content_domains = ("*.fal.media", "*.fal.run", "*.fal.ai")

    def __init__(self, *, field_maps: Mapping[str, FieldMap] | None = None, **common: Any) -> None:
        super().__init__(**common)
        self._field_maps = dict(field_maps or {})  # upstream model -> its inputs

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self._api_key}"} if self._api_key else {}

    async def create(self, request: RenderRequest) -> UpstreamJob:
        mapping = self._field_maps.get(request.model)
        if mapping is None or not MODEL_PATH.fullmatch(request.model):
            raise ProviderUnusable(
                f"no field mapping for fal model {request.model!r}", provider=self.name
            )
        reply = await self.request_json(
            "POST", self.url(f"/{request.model}"), json=mapping.inputs(request), operation="create"
        )
        request_id = text(reply.get("request_id")) if isinstance(reply, dict) else None
        if request_id is None or not REQUEST_ID.fullmatch(request_id):
            raise BadUpstreamReply("create reply has no request_id", provider=self.name)
        return self.job(f"{request.model}/requests/{request_id}", UpstreamStatus.QUEUED)

    async def get(self, upstream_id: str) -> UpstreamJob:
        base = self._request_url(upstream_id)
        state = await self.request_json("GET", f"{base}/status", operation="get")
        if not isinstance(state, dict) or "status" not in state:
            raise BadUpstreamReply("reply is not a queue status", provider=self.name)
        status = normalise(state["status"])
        error = state.get("error")
        if status is UpstreamStatus.COMPLETED and error:
            code = state.get("error_type")
            return self.job(
                upstream_id,
                UpstreamStatus.FAILED,
                error_code=None if code is None else str(code),
                error_message=str(error),
            )
        if status is not UpstreamStatus.COMPLETED:
            return self.job(upstream_id, status)
        try:
            await self._video_url(upstream_id)
        except Rejected as exc:  # the result is an error: the render failed there
            return self.job(
                upstream_id,
                UpstreamStatus.FAILED,
                error_code=exc.code,
                error_message=exc.message,
                moderated=exc.code == POLICY,
            )
        return self.job(upstream_id, UpstreamStatus.COMPLETED)

    async def cancel(self, upstream_id: str) -> None:
        try:
            await self.request_json(
                "PUT", f"{self._request_url(upstream_id)}/cancel", operation="cancel"
            )
        except Rejected as exc:
            if exc.status != 400:  # 400: already finished, nothing to cancel
                raise

    async def delete(self, upstream_id: str) -> None:
        """Nothing to do: the queue API has no delete; fal drops results on its own."""

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        return await self.open_link(await self._video_url(upstream_id), variant, range_header)

    async def probe(self) -> None:
        model = next(iter(self._field_maps), "fal-ai/probe")
        await self.probe_absent(f"{self._app_url(model)}/requests/{PROBE_REQUEST_ID}/status")

    def translate_status(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        error = super().translate_status(status, body, headers, operation)
        violations = _violations(body) if status == 422 else []
        if violations:
            error.code, error.message = POLICY, str(violations[0].get("msg") or error.message)
            if operation == "create":
                image = any("image" in str(v.get("loc")) for v in violations)
                return moderation_refusal(error, image=image)
        return error

    async def _video_url(self, upstream_id: str) -> str:
        result = await self.request_json("GET", self._request_url(upstream_id), operation="get")
        model = upstream_id.rsplit("/requests/", 1)[0]
        link = self._field_maps.get(model, FieldMap()).video_url(result)
        if link is None:
            raise BadUpstreamReply(f"request {upstream_id} has no video", provider=self.name)
        return link

    def _app_url(self, model: str) -> str:
        owner, app = model.split("/")[:2]
        return self.url(f"/{owner}/{app}")

    def _request_url(self, upstream_id: str) -> str:
        model, _, request_id = upstream_id.rpartition("/requests/")
        if not MODEL_PATH.fullmatch(model) or not REQUEST_ID.fullmatch(request_id):
            raise BadUpstreamReply(f"{upstream_id!r} is not a fal request", provider=self.name)
        return f"{self._app_url(model)}/requests/{request_id}"


def _violations(body: bytes) -> list[dict[str, Any]]:
    """The ``content_policy_violation`` entries of a 422's ``detail`` list."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    entries = detail if isinstance(detail, list) else []
    return [e for e in entries if isinstance(e, dict) and e.get("type") == POLICY]
