"""Veo through the Gemini API: ``models/{model}:predictLongRunning`` and operation polling.

``base_url`` is ``https://generativelanguage.googleapis.com/v1beta``; every call carries the
key in ``x-goog-api-key``. A create sends one instance (the prompt, and a first frame as
``image.bytesBase64Encoded``) and ``parameters`` ``aspectRatio``, ``resolution`` and
``durationSeconds``; it answers with an operation ``name``
(``models/{model}/operations/{id}``), which is the upstream id. A poll reads the operation:

- ``done`` false: rendering (the API has no progress, so it is estimated, ``providers.tasks``);
- ``done`` with ``error``: failed; moderation when its words say so, else a render failure;
- ``done`` with a sample's ``video.uri``: completed;
- ``done`` with no video and every sample filtered (``raiMediaFilteredCount``): **output
  moderation**, never success, so no spend is recorded for it (new-api PR #6838 is the bug this
  avoids); ``done`` with no video and nothing filtered is a render failure.

The video is fetched from the sample's URI with the key (the URI is on the API host); its
redirects are followed by hand, only to Google's hosts and never with the key
(``TaskProvider.open_link``). Google answers a wrong key with 400 ``API_KEY_INVALID``, which is
an unusable provider here, not a bad request. The probe lists one model.

Cannot: a first frame given as a URL (the Gemini API takes bytes only, and the proxy does not
fetch client URLs), remix, delete (Google drops the file after about two days), a list to look
an unanswered create up in, 480p, and lengths other than 4, 6 and 8 seconds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

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
from providers.sizes import NAMED_RESOLUTIONS, Geometry
from providers.tasks import TaskProvider, text

OPERATION = re.compile(r"models/[\w.-]+/operations/[\w.-]+")
_KEY_REFUSED = ("API_KEY_INVALID", "API key not valid")


class GeminiVeoProvider(TaskProvider):
    kind = "gemini"
    geometry = Geometry(
        resolutions=NAMED_RESOLUTIONS,
        ratios=frozenset({"16:9", "9:16"}),
        seconds=frozenset({4, 6, 8}),
    )
    render_estimate = 90.0  # Google gives 11 s to 6 min per render; most finish in 1 to 2 min
    content_domains = ("*.googleapis.com", "*.googleusercontent.com")

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key} if self._api_key else {}

    async def create(self, request: RenderRequest) -> UpstreamJob:
        pair = self.named_size(request)
        instance: dict[str, Any] = {"prompt": request.prompt}
        reference = request.input_reference
        if reference is not None:
            if reference.data is None:
                raise Rejected(
                    "Veo through the Gemini API takes an uploaded first frame, not a URL.",
                    provider=self.name,
                    param="input_reference",
                    code="unsupported_value",
                )
            instance["image"] = {
                "bytesBase64Encoded": base64.b64encode(reference.data).decode("ascii"),
                "mimeType": reference.content_type,
            }
        body = {
            "instances": [instance],
            "parameters": {
                "aspectRatio": pair[1],
                "resolution": pair[0],
                "durationSeconds": request.seconds,
            },
        }
        url = self.url(f"/models/{request.model}:predictLongRunning")
        reply = await self.request_json("POST", url, json=body, operation="create")
        name = reply.get("name") if isinstance(reply, dict) else None
        if not isinstance(name, str) or not OPERATION.fullmatch(name):
            raise BadUpstreamReply("create reply names no operation", provider=self.name)
        return self.job(name, UpstreamStatus.IN_PROGRESS)

    async def get(self, upstream_id: str) -> UpstreamJob:
        return self.read_operation(await self._operation(upstream_id, "get"))

    async def delete(self, upstream_id: str) -> None:
        """Nothing to do: Google drops generated files on its own after about two days."""

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        uri = _video_uri(await self._operation(upstream_id, "content"))
        if uri is None:
            raise BadUpstreamReply(f"operation {upstream_id} has no video", provider=self.name)
        return await self.open_link(uri, variant, range_header)

    async def probe(self) -> None:
        await self.request_json(
            "GET", self.url("/models"), params={"pageSize": "1"}, operation="probe"
        )

    def translate_status(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        error = super().translate_status(status, body, headers, operation)
        if status == 400 and any(word.encode() in body for word in _KEY_REFUSED):
            return ProviderUnusable(error.message, provider=self.name, status=400, sent=True)
        return error

    def read_operation(self, reply: Any) -> UpstreamJob:
        """Read a long-running operation; without a name it is a broken upstream."""
        if not isinstance(reply, dict) or not text(reply.get("name")):
            raise BadUpstreamReply("reply is not an operation", provider=self.name)
        name = str(reply["name"])
        if not reply.get("done"):
            return self.job(name, UpstreamStatus.IN_PROGRESS)
        error = reply.get("error")
        if isinstance(error, dict):
            code = error.get("status") or error.get("code")
            return self.job(
                name,
                UpstreamStatus.FAILED,
                error_code=None if code is None else str(code),
                error_message=text(error.get("message")) or "The operation failed.",
            )
        if _video_uri(reply) is not None:
            return self.job(name, UpstreamStatus.COMPLETED)
        outcome = _generated(reply)
        filtered = outcome.get("raiMediaFilteredCount")
        if isinstance(filtered, int) and filtered > 0:
            reasons = outcome.get("raiMediaFilteredReasons")
            said = [r for r in reasons if isinstance(r, str)] if isinstance(reasons, list) else []
            message = " ".join(said) or "Every sample was filtered by Google's safety filters."
            return self.job(name, UpstreamStatus.FAILED, error_message=message, moderated=True)
        return self.job(
            name,
            UpstreamStatus.FAILED,
            error_code="empty_result",
            error_message="The operation finished without a video.",
        )

    async def _operation(self, upstream_id: str, operation: str) -> Any:
        if not OPERATION.fullmatch(upstream_id):
            raise BadUpstreamReply(f"{upstream_id!r} is not an operation", provider=self.name)
        return await self.request_json("GET", self.url(f"/{upstream_id}"), operation=operation)


def _generated(operation: dict[str, Any]) -> dict[str, Any]:
    response = operation.get("response")
    found = response.get("generateVideoResponse") if isinstance(response, dict) else None
    return found if isinstance(found, dict) else {}


def _video_uri(operation: dict[str, Any]) -> str | None:
    """The first sample's video URI, if the operation has one."""
    samples = _generated(operation).get("generatedSamples")
    for sample in samples if isinstance(samples, list) else ():
        video = sample.get("video") if isinstance(sample, dict) else None
        uri = text(video.get("uri")) if isinstance(video, dict) else None
        if uri is not None:
            return uri
    return None
