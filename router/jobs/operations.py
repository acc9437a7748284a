"""Sending one render to one provider: the wire operation it takes, with its characters.

``Sender.send`` is the one place that turns a ``RenderRequest`` into an adapter call (create,
remix, edit or extend, by ``request.operation``). Characters are created on a provider lazily:
the first time a render casting one goes there, its clip is uploaded (``create_character``)
and the provider's id for it kept in the ``CharacterStore``; every later render there reuses
it. So a render that fails over takes its characters along, and a provider that never gets such
a render never gets the clip.

A failed character upload is that provider's failure to take the render, before the render was
sent: an unanswered upload is reported as ``ServerFailed`` (never sent) so the dispatcher tries
the next candidate instead of treating the render as possibly accepted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from providers.base import (
    BadUpstreamReply,
    Operation,
    RenderRequest,
    ServerFailed,
    UpstreamJob,
    UpstreamTimeout,
)
from router.routing.pool import PoolEntry
from router.store.characters import CharacterStore


class Sender:
    """Calls the adapter operation a render needs, creating its characters there first."""

    __slots__ = ("_characters", "_uploading")

    def __init__(self, characters: CharacterStore | None) -> None:
        self._characters = characters
        # one upload per (character, provider) at a time: a second render waits for the first
        self._uploading: dict[tuple[str, str], asyncio.Lock] = {}

    def send(
        self, entry: PoolEntry, request: RenderRequest, characters: tuple[str, ...] = ()
    ) -> Awaitable[UpstreamJob]:
        """Render ``request`` on ``entry``; ``characters`` are our ids of those it casts.

        Without characters this hands back the adapter call itself, so a create's coroutine
        chain has no layer of ours here: each time the upstream call resumes, every coroutine
        between the task and the socket is resumed with it.
        """
        if characters:
            return self._send_cast(entry, request, characters)
        return self._call(entry, request)

    async def _send_cast(
        self, entry: PoolEntry, request: RenderRequest, characters: tuple[str, ...]
    ) -> UpstreamJob:
        request.characters = tuple([await self._cast(entry, c) for c in characters])
        return await self._call(entry, request)

    @staticmethod
    def _call(entry: PoolEntry, request: RenderRequest) -> Awaitable[UpstreamJob]:
        """The adapter operation ``request.operation`` names."""
        adapter = entry.adapter
        operation = request.operation
        if operation is Operation.CREATE:
            return adapter.create(request)
        if operation is Operation.EDIT:
            return adapter.edit(request)
        if operation is Operation.EXTEND:
            return adapter.extend(request)
        source = request.source
        if source is None or source.upstream_id is None:
            raise ValueError("a remix needs the upstream id of its source")
        return adapter.remix(source.upstream_id, request.prompt)

    async def _cast(self, entry: PoolEntry, character_id: str) -> str:
        """This provider's id of the character, uploading the clip the first time."""
        store = self._characters
        if store is None:
            raise ValueError("characters are cast without a character store")
        slot = (character_id, entry.name)
        lock = self._uploading.setdefault(slot, asyncio.Lock())
        async with lock:
            known = await store.upstream_id(character_id, entry.name)
            if known is not None:
                return known
            character = await store.get(character_id)
            if character is None:
                raise KeyError(character_id)
            clip = await store.clip(character_id)
            try:
                upstream_id = await entry.adapter.create_character(character.name, clip)
            except (UpstreamTimeout, BadUpstreamReply) as exc:
                raise ServerFailed(
                    f"character upload went unanswered: {exc.message}",
                    provider=entry.name,
                    sent=False,
                ) from exc
            await store.remember(character_id, entry.name, upstream_id)
        self._uploading.pop(slot, None)
        return upstream_id
