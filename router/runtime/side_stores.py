"""Cleanup context: the character store and the webhook outbox, on the store's backend.

With ``store.backend: sqlite`` both are tables in the job store's file
(``router.store.side_tables``); with ``redis`` both live in the fleet's Redis, so a character
made through one instance is cast through any, and one outbox serves every instance (each
event claimed by one deliverer at a time). Built after the job store, closed before it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from router import appkeys as keys
from router.store.characters import CharacterStore, SqliteCharacterStore
from router.store.outbox import SqliteWebhookOutbox, WebhookOutbox
from router.store.redis_characters import RedisCharacterStore
from router.store.redis_outbox import RedisWebhookOutbox

# a finished event (and the record that its job had one) outlives webhooks.give_up_after by
# this much in Redis, so the start-up backfill never makes a second event for one job
KEEP_SLACK = 86400.0


async def side_stores(app: web.Application) -> AsyncIterator[None]:
    config = app[keys.CONFIG].current
    characters: CharacterStore
    outbox: WebhookOutbox
    if config.store.backend == "redis":
        client = app[keys.REDIS]
        characters = RedisCharacterStore(client)
        outbox = RedisWebhookOutbox(client, keep=config.webhooks.give_up_after + KEEP_SLACK)
    else:
        characters = SqliteCharacterStore(config.store.path)
        outbox = SqliteWebhookOutbox(config.store.path)
    await characters.open()
    try:
        await outbox.open()
        try:
            app[keys.CHARACTERS] = characters
            app[keys.OUTBOX] = outbox
            yield
        finally:
            await outbox.close()
    finally:
        await characters.close()
