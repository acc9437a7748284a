"""The character store and the webhook outbox as instances of a fleet would have them.

``SideStores.instance()`` is another process's store over the same backing (SQLite belongs to
one process, so there it is the one open store; on Redis a new connection each time);
``reopen()`` is a process starting again after the last one ended (or died): SQLite closes
and opens the file, Redis keeps its data and a new connection reads it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from router.config.model import StoreConfig
from router.store.characters import CharacterStore, SqliteCharacterStore
from router.store.outbox import SqliteWebhookOutbox, WebhookOutbox
from router.store.redis_characters import RedisCharacterStore
from router.store.redis_client import RedisClient, connect
from router.store.redis_outbox import RedisWebhookOutbox

KEEP = 3600.0  # seconds a finished event is kept in Redis (only its TTL is looked at)


@dataclass
class SideStores:
    path: Path
    redis: StoreConfig | None
    outboxes: list[WebhookOutbox] = field(default_factory=list)
    characters: list[CharacterStore] = field(default_factory=list)
    clients: list[RedisClient] = field(default_factory=list)

    async def outbox(self) -> WebhookOutbox:
        if self.redis is None and self.outboxes:
            return self.outboxes[-1]
        return await self.reopen_outbox()

    async def reopen_outbox(self) -> WebhookOutbox:
        outbox: WebhookOutbox
        if self.redis is None:
            for old in self.outboxes:
                await old.close()
            outbox = SqliteWebhookOutbox(self.path)
        else:
            outbox = RedisWebhookOutbox(self._client(), keep=KEEP)
        await outbox.open()
        self.outboxes.append(outbox)
        return outbox

    async def character_store(self) -> CharacterStore:
        if self.redis is None and self.characters:
            return self.characters[-1]
        return await self.reopen_characters()

    async def reopen_characters(self) -> CharacterStore:
        store: CharacterStore
        if self.redis is None:
            for old in self.characters:
                await old.close()
            store = SqliteCharacterStore(self.path)
        else:
            store = RedisCharacterStore(self._client())
        await store.open()
        self.characters.append(store)
        return store

    def _client(self) -> RedisClient:
        assert self.redis is not None
        client = connect(self.redis)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for outbox in self.outboxes:
            await outbox.close()
        for store in self.characters:
            await store.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def side(tmp_path: Path, redis_config: StoreConfig | None) -> AsyncIterator[SideStores]:
    stores = SideStores(tmp_path / "jobs.db", redis_config)
    yield stores
    await stores.close()
