"""The base of the upstream kinds whose render is a task read by id and whose video is a link:
``openrouter``, ``gemini``, ``xai``, ``ark`` and ``fal``.

What they share, so no adapter copies it:

- ``geometry``: what the wire format can ask for (``providers.sizes.Geometry``); the config
  refuses a size or a length a kind cannot name exactly, before any render;
- estimated progress: none of these upstreams report any, so ``job`` fills it in from
  ``ProgressEstimate``: linear in the time a task has been seen rendering, reaching
  ``ESTIMATE_CAP`` at the kind's typical render time (``render_estimate``, from the vendor's
  own figures; a provider may set its own) and holding there. It is an estimate, never a
  measurement. A job's progress never goes backwards (``router.records.job``), and a render
  that outlasts its estimate by ``stall_timeout`` is failed over as stalled;
- moderation named in a 4xx at submit (``translate_status``): the prompt stage, or the input
  stage when the upstream names the image;
- no remix and no list: ``find`` and ``list_page`` raise ``Unsearchable``, so an unanswered
  create is never confirmed, and the job fails after ``reconcile_window`` rather than risk a
  second render elsewhere;
- ``probe_absent``: reading a task that cannot exist; the 404 proves the upstream answers and
  takes our key, and costs nothing;
- ``open_link``: downloads of result links, under the address policy of every adapter
  (``providers.addresses``: our key only to the provider's own origin, redirects followed by
  hand, no private addresses), with the kind's own domains (``content_domains``: Google's for
  Gemini, so a download redirects only there) added to the provider's ``content_hosts``. A
  link elsewhere is a broken upstream (``BadUpstreamReply``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from yarl import URL

from providers.base import (
    BadUpstreamReply,
    ContentStream,
    InputReference,
    ListPage,
    ModerationBlocked,
    ModerationStage,
    ProviderError,
    Rejected,
    RenderRequest,
    Unsearchable,
    UpstreamJob,
    UpstreamStatus,
)
from providers.http import HttpProvider
from providers.sizes import Geometry, named
from providers.statuses import mentions_moderation

MODERATION_CODE = "moderation_blocked"
ESTIMATE_CAP = 95  # estimated progress stops here; only a finished render reaches 100
_TRACKED = 100_000  # tasks whose first sighting is remembered; the oldest is forgotten first


class ProgressEstimate:
    """Progress for an upstream that reports none, from when a task was first seen rendering.

    ``seconds`` is the kind's typical render time. Kept in memory: after a restart a task's
    estimate starts again from 0, which the job's never-backwards progress hides.
    """

    __slots__ = ("_clock", "_seen", "seconds")

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._seen: dict[str, float] = {}

    def at(self, upstream_id: str, status: UpstreamStatus) -> int | None:
        """The estimate for a task in ``status``: 0 queued, rising while rendering, 100 done."""
        if status is UpstreamStatus.QUEUED:
            return 0
        if status is not UpstreamStatus.IN_PROGRESS:
            self._seen.pop(upstream_id, None)
            return 100 if status is UpstreamStatus.COMPLETED else None
        now = self._clock()
        started = self._seen.get(upstream_id)
        if started is None:
            if len(self._seen) >= _TRACKED:
                del self._seen[next(iter(self._seen))]
            started = self._seen[upstream_id] = now
        share = (now - started) / self.seconds if self.seconds > 0 else 1.0
        return min(ESTIMATE_CAP, int(ESTIMATE_CAP * share))


class TaskProvider(HttpProvider):
    """Base for the task kinds; subclasses give the wire operations and these class facts."""

    geometry: ClassVar[Geometry]  # what the wire format can ask for
    render_estimate: ClassVar[float]  # seconds a typical render takes, from the vendor's figures
    # where result links may lead besides the provider's host, as ``content_hosts`` patterns
    content_domains: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        render_estimate: float | None = None,
        content_hosts: tuple[str, ...] = (),
        **common: Any,
    ) -> None:
        super().__init__(content_hosts=(*content_hosts, *self.content_domains), **common)
        self._estimate = ProgressEstimate(render_estimate or type(self).render_estimate)

    def job(
        self,
        upstream_id: str,
        status: UpstreamStatus,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        moderated: bool = False,
        **extra: Any,
    ) -> UpstreamJob:
        """An ``UpstreamJob`` with estimated progress; a failure that names moderation (or is
        known to be moderation) becomes ``moderation_blocked``, the output stage."""
        if status is UpstreamStatus.FAILED and (
            moderated or mentions_moderation(error_code) or mentions_moderation(error_message)
        ):
            error_code = MODERATION_CODE
        return UpstreamJob(
            upstream_id=upstream_id,
            status=status,
            progress=self._estimate.at(upstream_id, status),
            error_code=self.upstream_text(error_code),
            error_message=self.upstream_text(error_message),
            **extra,
        )

    def named_size(self, request: RenderRequest) -> tuple[str, str]:
        """``(resolution, ratio)`` naming the request's size; config keeps out sizes without
        a name, and this refuses one anyway rather than render another size."""
        pair = named(request.size)
        if pair is None:
            raise Rejected(
                f"Size {request.size} has no resolution and aspect ratio on {self.kind}.",
                provider=self.name,
                param="size",
                code="invalid_value",
            )
        return pair

    def sized_body(self, request: RenderRequest) -> dict[str, Any]:
        """The create fields OpenRouter and xAI name alike: ``model``, ``prompt``,
        ``duration`` (whole seconds), ``resolution`` and ``aspect_ratio``."""
        resolution, ratio = self.named_size(request)
        return {
            "model": request.model,
            "prompt": request.prompt,
            "duration": request.seconds,
            "resolution": resolution,
            "aspect_ratio": ratio,
        }

    def translate_status(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        """The shared translation, plus moderation these upstreams name only in their words."""
        error = super().translate_status(status, body, headers, operation)
        if type(error) is Rejected and (
            mentions_moderation(error.code) or mentions_moderation(error.message)
        ):
            return moderation_refusal(error, image=_names_image(error))
        return error

    # -- what none of these wire formats has --------------------------------------------

    async def remix(self, upstream_id: str, prompt: str) -> UpstreamJob:
        raise self.cannot("remix")

    async def find(self, request: RenderRequest, since: float) -> list[UpstreamJob]:
        """Always ``Unsearchable``: these wire formats have no list to look an unanswered
        create up in, and no client reference to look it up by."""
        raise Unsearchable(f"find: {self.kind} has no list of renders", provider=self.name)

    async def list_page(self, after: str | None) -> ListPage:
        """Always ``Unsearchable``: these wire formats have no list of renders."""
        raise Unsearchable(f"list: {self.kind} has no list of renders", provider=self.name)

    # -- shared plumbing ----------------------------------------------------------------

    async def probe_absent(self, url: str) -> None:
        """Read something that cannot exist: a 404 proves the upstream answers and takes our
        key. 401/403 come back as ``ProviderUnusable``, 429 and 5xx as themselves."""
        try:
            await self.request_json("GET", url, operation="probe")
        except Rejected as exc:
            if exc.status != 404:
                raise

    async def open_link(
        self, link: str, variant: str, range_header: str | None = None
    ) -> ContentStream:
        """Stream a result link under the address rules above; only the video variant exists."""
        require_video(variant, provider=self.name, source=self.kind)
        try:
            target = URL(self.base_url).join(URL(link))
        except ValueError:
            raise BadUpstreamReply("an unreadable result link", provider=self.name) from None
        return await self.open_stream(str(target), range_header=range_header)


def require_video(variant: str, *, provider: str, source: str) -> None:
    """Refuse any variant but the video: upstreams that hand out one link have no other."""
    if variant != "video":
        raise Rejected(
            f"Only the video variant exists for renders from {source}, not {variant!r}.",
            provider=provider,
            param="variant",
            code="invalid_value",
        )


def moderation_refusal(error: ProviderError, *, image: bool) -> ModerationBlocked:
    """``error`` as the content-policy refusal at submit it is: the input or prompt stage."""
    return ModerationBlocked(
        error.message,
        stage=ModerationStage.INPUT if image else ModerationStage.PROMPT,
        provider=error.provider,
        status=error.status,
        code=error.code,
        param=error.param,
        sent=error.sent,
    )


def _names_image(error: ProviderError) -> bool:
    """Whether a refusal is about the input image: its code or param says image, or its
    message says input image (upstreams without codes say it only in words)."""
    named = any(w is not None and "image" in w.casefold() for w in (error.code, error.param))
    return named or "input image" in error.message.casefold()


def reference_url(reference: InputReference | None) -> str | None:
    """The first frame as a URL the upstream fetches (data URL for uploads), or None."""
    return None if reference is None else reference.as_url()


def text(value: object) -> str | None:
    """A non-empty string field, else None."""
    return value if isinstance(value, str) and value else None


def number(value: object) -> float | None:
    """A JSON number field (not a bool), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
