"""Seedance through BytePlus ModelArk / Volcengine Ark: ``/contents/generations/tasks``.

``base_url`` is ``https://ark.ap-southeast.bytepluses.com/api/v3`` (BytePlus; Volcengine's
Ark in China has the same paths on its own host); every call carries ``Authorization:
Bearer``. A create is JSON ``{model, content: [{type: text}, {type: image_url, role:
first_frame}], ratio, resolution, duration}`` (the top-level fields of the current API; older
Seedance models read ``--ratio``-style flags from the text instead, which this adapter does
not send) and answers ``{id}`` (``cgt-...``), the upstream id. A poll answers ``status``
``queued|running|succeeded|failed|cancelled|expired``, read through ``providers.statuses``;
there is no progress, so it is estimated (``providers.tasks``). ``DELETE`` on the task cancels
a queued one (``cancel``) and deletes a finished one (``delete``).

A failure's ``error: {code, message}`` names moderation in its code (``...SensitiveContent
Detected``): at submit that is the prompt stage (the input stage when the code names the
image), with a finished task the output stage. Token usage (``usage.total_tokens``, Ark bills
by tokens) is recorded on the attempt. The video is ``content.video_url`` on Ark's object
storage, fetched without our key. The probe reads a task that cannot exist.

Cannot: remix, a list to look an unanswered create up in (Ark lists tasks, but not their
prompts, so a match would be a guess), 480p, lengths outside 2 to 12 seconds.
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

TASKS_PATH = "/contents/generations/tasks"
PROBE_TASK_ID = "cgt-00000000000000-probe"


class ArkSeedanceProvider(TaskProvider):
    kind = "ark"
    geometry = Geometry(
        resolutions=NAMED_RESOLUTIONS,
        ratios=NAMED_RATIOS,
        min_seconds=2,
        max_seconds=12,
    )
    render_estimate = 60.0  # Seedance renders a 5 s 720p clip in about a minute
    cancels = True
    content_domains = ("*.bytepluses.com", "*.volces.com")

    async def create(self, request: RenderRequest) -> UpstreamJob:
        pair = self.named_size(request)
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        image = reference_url(request.input_reference)
        if image is not None:
            content.append(
                {"type": "image_url", "image_url": {"url": image}, "role": "first_frame"}
            )
        body = {
            "model": request.model,
            "content": content,
            "ratio": pair[1],
            "resolution": pair[0],
            "duration": request.seconds,
        }
        reply = await self.request_json("POST", self.url(TASKS_PATH), json=body, operation="create")
        task_id = reply.get("id") if isinstance(reply, dict) else None
        return self.job(self.upstream_id(task_id), UpstreamStatus.QUEUED)

    async def get(self, upstream_id: str) -> UpstreamJob:
        return self.read_task(await self._task(upstream_id, "get"))

    async def cancel(self, upstream_id: str) -> None:
        """``DELETE`` on a queued task cancels it (Ark refuses once it is running)."""
        await self._delete(upstream_id, "cancel")

    async def delete(self, upstream_id: str) -> None:
        """``DELETE`` on a finished task deletes Ark's record of it."""
        await self._delete(upstream_id, "delete")

    async def _delete(self, upstream_id: str, operation: str) -> None:
        await self.request_json(
            "DELETE", self.url(f"{TASKS_PATH}/{segment(upstream_id)}"), operation=operation
        )

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        link = _video_url(await self._task(upstream_id, "content"))
        if link is None:
            raise BadUpstreamReply(f"task {upstream_id} has no video", provider=self.name)
        return await self.open_link(link, variant, range_header)

    async def probe(self) -> None:
        await self.probe_absent(self.url(f"{TASKS_PATH}/{PROBE_TASK_ID}"))

    def read_task(self, task: Any) -> UpstreamJob:
        """Read a task; without an id and a status it is a broken upstream."""
        if not isinstance(task, dict) or not text(task.get("id")) or "status" not in task:
            raise BadUpstreamReply("reply is not a generation task", provider=self.name)
        status = normalise(task["status"])
        if status is UpstreamStatus.COMPLETED and _video_url(task) is None:
            status = UpstreamStatus.IN_PROGRESS  # completed means downloadable
        found = task.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        message = text(error.get("message"))
        if status is UpstreamStatus.FAILED and message is None:
            message = f"The task ended {task['status']} at Ark."
        usage = task.get("usage")
        tokens = None
        if isinstance(usage, dict):
            tokens = number(usage.get("total_tokens")) or number(usage.get("completion_tokens"))
        return self.job(
            self.upstream_id(task["id"]),
            status,
            error_code=text(error.get("code")),
            error_message=message,
            usage_tokens=None if tokens is None else int(tokens),
        )

    async def _task(self, upstream_id: str, operation: str) -> Any:
        return await self.request_json(
            "GET", self.url(f"{TASKS_PATH}/{segment(upstream_id)}"), operation=operation
        )


def _video_url(task: dict[str, Any]) -> str | None:
    content = task.get("content")
    return text(content.get("video_url")) if isinstance(content, dict) else None
