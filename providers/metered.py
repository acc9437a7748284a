"""``MeteredProvider``: times and classifies every call to a provider, at the boundary.

The pool wraps each adapter in one, so every caller (dispatcher, poller, list sweeps, content
proxy, health probes) is measured without knowing it; each list page is one ``list`` call. The
observer is a plain callable, so this module needs nothing from ``router`` or ``monitoring``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from providers.base import (
    ContentStream,
    ListPage,
    ModerationBlocked,
    Provider,
    ProviderError,
    RateLimited,
    Rejected,
    RenderRequest,
    SourceVideo,
    Unsearchable,
    UpstreamJob,
    UpstreamTimeout,
)

T = TypeVar("T")
Observer = Callable[[str, str, str, float], None]  # provider, operation, outcome, seconds
Moderated = Callable[[str, str], None]  # provider, stage


def outcome_of(exc: ProviderError) -> str:
    """A bounded word for a failed call (never the message, which may quote a prompt)."""
    if isinstance(exc, ModerationBlocked):
        return "moderated"
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, UpstreamTimeout):
        return "timeout"
    if isinstance(exc, Rejected):
        return "rejected"
    if isinstance(exc, Unsearchable):
        return "unsupported"
    return "error"


class MeteredProvider:
    """A ``Provider`` that reports each call's operation, outcome and latency."""

    __slots__ = ("_inner", "_moderated", "_observe", "cancels", "features", "kind", "lists", "name")

    def __init__(self, inner: Provider, observe: Observer, moderated: Moderated) -> None:
        self._inner = inner
        self._observe = observe
        self._moderated = moderated
        self.name = inner.name
        self.kind = inner.kind
        self.lists = inner.lists
        self.features = inner.features
        self.cancels = inner.cancels

    async def _call(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except ProviderError as exc:
            self._observe(self.name, operation, outcome_of(exc), time.perf_counter() - started)
            if isinstance(exc, ModerationBlocked):
                self._moderated(self.name, exc.stage.value)
            raise
        self._observe(self.name, operation, "ok", time.perf_counter() - started)
        return result

    # Plain methods handing back ``_call``'s coroutine: one coroutine per call, not two.

    def create(self, request: RenderRequest) -> Coroutine[Any, Any, UpstreamJob]:
        return self._call("create", self._inner.create(request))

    def get(self, upstream_id: str) -> Coroutine[Any, Any, UpstreamJob]:
        return self._call("get", self._inner.get(upstream_id))

    def remix(self, upstream_id: str, prompt: str) -> Coroutine[Any, Any, UpstreamJob]:
        return self._call("remix", self._inner.remix(upstream_id, prompt))

    def edit(self, request: RenderRequest) -> Coroutine[Any, Any, UpstreamJob]:
        return self._call("edit", self._inner.edit(request))

    def extend(self, request: RenderRequest) -> Coroutine[Any, Any, UpstreamJob]:
        return self._call("extend", self._inner.extend(request))

    def create_character(self, name: str, clip: SourceVideo) -> Coroutine[Any, Any, str]:
        return self._call("characters", self._inner.create_character(name, clip))

    def cancel(self, upstream_id: str) -> Coroutine[Any, Any, None]:
        return self._call("cancel", self._inner.cancel(upstream_id))

    def delete(self, upstream_id: str) -> Coroutine[Any, Any, None]:
        return self._call("delete", self._inner.delete(upstream_id))

    def open_content(
        self, upstream_id: str, variant: str, range_header: str | None = None
    ) -> Coroutine[Any, Any, ContentStream]:
        return self._call("content", self._inner.open_content(upstream_id, variant, range_header))

    def probe(self) -> Coroutine[Any, Any, None]:
        return self._call("probe", self._inner.probe())

    def find(self, request: RenderRequest, since: float) -> Coroutine[Any, Any, list[UpstreamJob]]:
        return self._call("find", self._inner.find(request, since))

    def list_page(self, after: str | None) -> Coroutine[Any, Any, ListPage]:
        return self._call("list", self._inner.list_page(after))

    async def aclose(self) -> None:
        await self._inner.aclose()
