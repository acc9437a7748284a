"""The provider interface, the records it speaks in, and the upstream error tree.

A provider is one upstream account reached through one wire format (its *kind*). Adapters
translate every failure exactly once, at the HTTP boundary, into the most specific
``ProviderError`` below, so the router decides on classes, never on raw statuses::

    ProviderError             .sent: False (never left us) | None (may have been accepted)
    ├── ConnectFailed              not sent; safe to try elsewhere
    ├── UpstreamTimeout            sent=None when the request left us: ambiguous for creates
    ├── RateLimited                429; cool the provider for retry_after, not an outlier signal
    ├── ServerFailed               5xx; the upstream did not take the job
    ├── ProviderUnusable           401/403, model or path missing: go elsewhere
    ├── ModerationBlocked          stage input|prompt|output; terminal; never a health signal
    ├── Rejected                   any other 4xx: the request itself is wrong; terminal
    ├── BadUpstreamReply           2xx we cannot parse: the upstream is broken
    └── Unsearchable               find and list_page only: this upstream has no usable list

This module must not import from ``router`` or ``monitoring``.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

# Seconds our clock and an upstream's may disagree by; ``created_at`` is also whole seconds.
CLOCK_SKEW = 60.0


class UpstreamStatus(enum.Enum):
    """An upstream job's status after normalisation (see ``providers.statuses``)."""

    QUEUED = "queued"  # accepted, not rendering yet
    IN_PROGRESS = "in_progress"  # rendering
    COMPLETED = "completed"  # finished with a downloadable asset
    FAILED = "failed"  # finished without an asset
    UNRECOGNISED = "unrecognised"  # a status word not in the table: keep polling, never fail on it


class ModerationStage(enum.Enum):
    INPUT = "input"  # the input image (faces, real people)
    PROMPT = "prompt"  # the prompt text, refused at create
    OUTPUT = "output"  # the rendered video, checked after rendering ("fails at 90%")


@dataclass(slots=True, frozen=True)
class InputReference:
    """An image that becomes the first frame: uploaded bytes or a URL the upstream fetches."""

    data: bytes | None = None
    filename: str = "input"
    content_type: str = "application/octet-stream"
    url: str | None = None

    def as_url(self) -> str:
        """The URL an upstream fetches: the one given, or the uploaded bytes as a data URL."""
        if self.url is not None:
            return self.url
        encoded = base64.b64encode(self.data or b"").decode("ascii")
        return f"data:{self.content_type};base64,{encoded}"


class Operation(enum.Enum):
    """Which wire operation renders a request; a kind that lacks one says so in ``features``."""

    CREATE = "create"  # a new render from a prompt (and maybe an image and characters)
    REMIX = "remix"  # a new render from a completed one, by its upstream id
    EDIT = "edit"  # a completed render (by upstream id) or an uploaded video, edited
    EXTEND = "extend"  # a completed render or an uploaded video, continued by ``seconds``


# What a kind can do besides create; ``Provider.features`` is a subset of these words.
FEATURES = ("remix", "edit", "extend", "characters")


@dataclass(slots=True, frozen=True)
class SourceVideo:
    """The video an edit or extension starts from: a render the upstream holds (its upstream
    id) or uploaded bytes, sent along with the request."""

    upstream_id: str | None = None
    data: bytes | None = field(default=None, repr=False)
    filename: str = "video.mp4"
    content_type: str = "video/mp4"


@dataclass(slots=True)
class RenderRequest:
    """What a provider is asked to render, in the client catalogue's terms.

    ``model`` is already the provider's upstream model name; size and seconds are the
    catalogue's values, which each adapter maps to its wire format (for an extension,
    ``seconds`` is the new segment's length, not the stitched total). ``characters`` are
    this provider's own ids of the characters to cast. Treated as immutable but not frozen,
    like ``UpstreamJob``: built on every create, and a frozen dataclass sets each field
    through ``object.__setattr__``, about five times slower.
    """

    model: str
    prompt: str
    size: str
    seconds: int
    input_reference: InputReference | None = None
    operation: Operation = Operation.CREATE
    source: SourceVideo | None = None
    characters: tuple[str, ...] = ()
    # The relay dialect's own switches, sent only to relay upstreams; None: not given.
    watermark: bool | None = None
    private: bool | None = None


@dataclass(slots=True)
class UpstreamJob:
    """One upstream job as last seen: its id there and its normalised state (never changed
    after it is built; not frozen, see ``RenderRequest``)."""

    upstream_id: str
    status: UpstreamStatus
    progress: int | None = None  # 0..100 when the upstream said, else None
    error_code: str | None = None
    error_message: str | None = None
    expires_at: float | None = None  # when the upstream drops the asset (unix seconds)
    cost_usd: float | None = None  # what the upstream says the render cost (OpenRouter, xAI)
    usage_tokens: int | None = None  # tokens the upstream metered the render at (Ark)


@dataclass(slots=True, frozen=True)
class ListPage:
    """One page of an upstream's list of renders, newest first."""

    jobs: list[UpstreamJob]
    oldest: float | None  # the oldest entry's creation time (unix seconds), None if not shown
    next_after: str | None  # the cursor of the next (older) page; None: the list ends here


class ContentStream(Protocol):
    """A download in flight; the caller iterates it once and must close it."""

    status: int
    content_type: str
    content_length: int | None
    headers: dict[str, str]  # the pass-through headers (Content-Range, Accept-Ranges, ETag)

    def chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Provider(Protocol):
    """One upstream account. One method per wire operation; all raise ``ProviderError``.

    ``features`` names the operations beyond create the wire format has (words of
    ``FEATURES``); a provider without one is never a candidate for it, and the method answers
    ``Rejected`` (code ``<feature>_not_supported``) if called anyway.
    """

    name: str
    kind: str
    lists: bool  # whether ``list_page`` can work: the wire format has a list of renders
    features: frozenset[str]
    cancels: bool  # whether ``cancel`` stops a render upstream

    async def create(self, request: RenderRequest) -> UpstreamJob: ...

    async def get(self, upstream_id: str) -> UpstreamJob: ...

    async def remix(self, upstream_id: str, prompt: str) -> UpstreamJob: ...

    async def edit(self, request: RenderRequest) -> UpstreamJob:
        """A new render editing ``request.source`` as ``request.prompt`` says."""
        ...

    async def extend(self, request: RenderRequest) -> UpstreamJob:
        """A new render continuing ``request.source`` by ``request.seconds``; the answer's
        length is the stitched total."""
        ...

    async def create_character(self, name: str, clip: SourceVideo) -> str:
        """Upload a character clip; returns this upstream's id for it."""
        ...

    async def cancel(self, upstream_id: str) -> None:
        """Stop a render in flight (``cancels``: the wire format can)."""
        ...

    async def delete(self, upstream_id: str) -> None: ...

    async def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> ContentStream: ...

    async def probe(self) -> None:
        """A free call that proves the upstream answers and our credentials work."""
        ...

    async def find(self, request: RenderRequest, since: float) -> list[UpstreamJob]:
        """A free call: the upstream jobs that may be ``request`` as sent at ``since``.

        For a create that was sent but never answered. ``since`` is when it was sent (unix
        seconds, our clock). Returns every job that matches the request and was created around
        then, best match first; an empty list means the upstream certainly does not have it.
        Raises ``Unsearchable`` when this upstream cannot tell (no list in its wire format, or
        a list that does not say enough); any other ``ProviderError`` is a failed read, to be
        tried again. The caller decides which match to claim.
        """
        ...

    async def list_page(self, after: str | None) -> ListPage:
        """A free call: one page (up to 100) of the upstream's renders, newest first.

        ``after`` is the previous page's ``next_after`` (None: start at the newest). The jobs
        are read exactly like ``get``'s; entries the upstream lists but we cannot read are left
        out. Raises ``Unsearchable`` when the upstream has no list (``lists`` is False, or the
        list route is missing); any other ``ProviderError`` is a failed read.
        """
        ...

    async def aclose(self) -> None: ...


class ProviderError(Exception):
    """A failed upstream call, classified once at the boundary.

    ``sent`` is False when the request certainly never reached the upstream and None when it
    may have been accepted (only meaningful for creates). ``status`` is the upstream HTTP
    status when there was one; ``code`` and ``message`` what the upstream said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        sent: bool | None = False,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        self.sent = sent
        self.retry_after = retry_after
        self.param = param

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, status={self.status}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class ConnectFailed(ProviderError):
    """The connection could not be made; nothing reached the upstream."""


class UpstreamTimeout(ProviderError):
    """No answer in time. For a create that was sent, the job may exist upstream."""


class RateLimited(ProviderError):
    """429: the upstream wants us to slow down for ``retry_after`` seconds."""


class ServerFailed(ProviderError):
    """5xx: the upstream failed and did not take the request."""


class ProviderUnusable(ProviderError):
    """Bad credentials, a missing model or deployment, a missing path: this provider can't serve."""


class BadUpstreamReply(ProviderError):
    """A success status with a body we cannot read."""


class ModerationBlocked(ProviderError):
    """A content-policy refusal. Terminal by default and never a health signal."""

    def __init__(self, message: str, *, stage: ModerationStage, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.stage = stage


class Rejected(ProviderError):
    """Any other 4xx: the request is wrong for every provider; the client hears it."""


class Unsearchable(ProviderError):
    """``find`` cannot tell whether the upstream has a render: "not found" would be a guess.

    The wire format has no list, or its list does not show what a match needs, or the list is
    too long to read to the end. ``list_page`` raises it when there is no list at all. Not an
    outage and never a health signal.
    """
