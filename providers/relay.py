"""The relay task dialect (``/v2/videos/generations``) spoken by new-api-derived resellers.

``base_url`` is the host root. A create is JSON with ``aspect_ratio`` + ``hd`` instead of a size
and ``duration`` as a string instead of ``seconds``; it answers ``{"task_id"}`` only. A poll
answers a task object with upper-case status words and ``"NN%"`` progress, both read through
``providers.statuses`` like every other adapter's. A failure says why only in free text
(``fail_reason``), so moderation is recognised there by its wording.

The finished video is a link in ``data.output`` (sometimes ``data.outputs[0]``), usually on a
CDN host with a limited lifetime, so it is looked up afresh for every download and streamed
through, from the relay's own host or a host listed in the provider's ``content_hosts`` only
(``providers.addresses``). Our key goes only to the relay's own origin, never to another host.

The dialect has no list, delete or remix; ``delete`` is a no-op, ``remix`` is refused, and
``find`` and ``list_page`` raise ``Unsearchable``: a create that went unanswered can never be
confirmed here, and every task in flight is polled by itself (``lists`` is False).
"""

from __future__ import annotations

from typing import Any

from yarl import URL

from providers.base import (
    BadUpstreamReply,
    ContentStream,
    ListPage,
    Rejected,
    RenderRequest,
    Unsearchable,
    UpstreamJob,
    UpstreamStatus,
)
from providers.http import HttpProvider, segment
from providers.sizes import LANDSCAPE, PORTRAIT, aspect_ratio_of, dimensions
from providers.statuses import mentions_moderation, normalise, reported_progress
from providers.tasks import require_video

TASKS_PATH = "/v2/videos/generations"
# upstream-apis.md 6.5: relays render "hd" from 1024p up (1792x1024 is hd, 1280x720 is not).
HD_MIN_SHORT_SIDE = 1024
# A uuid4 no relay will have issued: reading it proves the relay answers and takes our key.
PROBE_TASK_ID = "00000000-0000-4000-8000-000000000000"


def is_hd(size: str) -> bool:
    """Whether a relay needs ``hd: true`` to render ``size``."""
    return min(dimensions(size)) >= HD_MIN_SHORT_SIDE


class RelayProvider(HttpProvider):
    kind = "relay"

    async def create(self, request: RenderRequest) -> UpstreamJob:
        ratio = aspect_ratio_of(request.size)
        if ratio is None:
            raise Rejected(
                f"Size {request.size} has no relay aspect ratio ({LANDSCAPE} or {PORTRAIT}).",
                provider=self.name,
                param="size",
                code="invalid_value",
            )
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "model": request.model,
            "aspect_ratio": ratio,
            "hd": is_hd(request.size),
            "duration": str(request.seconds),
        }
        if request.input_reference is not None:
            body["images"] = [request.input_reference.as_url()]
        switches = {"watermark": request.watermark, "private": request.private}
        body.update({name: flag for name, flag in switches.items() if flag is not None})
        reply = await self.request_json("POST", self.url(TASKS_PATH), json=body, operation="create")
        task_id = reply.get("task_id") if isinstance(reply, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise BadUpstreamReply("create reply has no task_id", provider=self.name)
        return UpstreamJob(
            upstream_id=self.upstream_id(task_id), status=UpstreamStatus.QUEUED, progress=0
        )

    async def get(self, upstream_id: str) -> UpstreamJob:
        return self.task_to_job(await self._task(upstream_id, "get"))

    async def remix(self, upstream_id: str, prompt: str) -> UpstreamJob:
        raise Rejected(
            "This video was rendered through a relay, and the relay dialect has no remix.",
            provider=self.name,
            param="video_id",
            code="remix_not_supported",
        )

    async def delete(self, upstream_id: str) -> None:
        """Nothing to do: the relay dialect has no delete; its tasks expire on their own."""

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        require_video(variant, provider=self.name, source="a relay")
        output = _output(await self._task(upstream_id, "content"))
        try:
            target = URL(self.base_url).join(URL(output)) if output is not None else None
        except ValueError:
            target = None
        if target is None:
            raise BadUpstreamReply(f"task {upstream_id} has no output link", provider=self.name)
        # Where the link may point, and whether our key goes with it: the base decides.
        return await self.open_stream(str(target), range_header=range_header)

    async def find(self, request: RenderRequest, since: float) -> list[UpstreamJob]:
        """Always ``Unsearchable``: tasks are reachable only by the id a create answers with."""
        raise Unsearchable(
            "find: the relay dialect has no list of tasks", provider=self.name, sent=False
        )

    async def list_page(self, after: str | None) -> ListPage:
        """Always ``Unsearchable``: the relay dialect has no list of tasks."""
        raise Unsearchable(
            "list: the relay dialect has no list of tasks", provider=self.name, sent=False
        )

    async def probe(self) -> None:
        """Read a task that cannot exist: its 404 proves the relay answers and accepts our key.

        401/403 come back as ``ProviderUnusable``, 429 and 5xx as themselves.
        """
        try:
            await self._task(PROBE_TASK_ID, "probe")
        except Rejected as exc:
            if exc.status != 404:
                raise

    def task_to_job(self, task: Any) -> UpstreamJob:
        """Read a task object; anything without a task id and a status is a broken upstream."""
        if not isinstance(task, dict) or not task.get("task_id") or "status" not in task:
            raise BadUpstreamReply("reply is not a relay task", provider=self.name)
        raw = str(task["status"])
        status = normalise(raw)
        if status is UpstreamStatus.COMPLETED and _output(task) is None:
            # Completed means downloadable; the link tends to show up on a later poll.
            status = UpstreamStatus.IN_PROGRESS
        found = task.get("fail_reason")
        reason = found if isinstance(found, str) and found else None
        moderated = status is UpstreamStatus.FAILED and mentions_moderation(reason)
        return UpstreamJob(
            upstream_id=self.upstream_id(task["task_id"]),
            status=status,
            progress=reported_progress(status, task.get("progress")),
            error_code="moderation_blocked" if moderated else None,
            error_message=self.upstream_text(reason),
        )

    async def _task(self, upstream_id: str, operation: str) -> Any:
        return await self.request_json(
            "GET", self.url(f"{TASKS_PATH}/{segment(upstream_id)}"), operation=operation
        )


def _output(task: dict[str, Any]) -> str | None:
    data = task.get("data")
    if not isinstance(data, dict):
        return None
    output = data.get("output")
    if not output and isinstance(data.get("outputs"), list) and data["outputs"]:
        output = data["outputs"][0]
    return output if isinstance(output, str) and output else None
