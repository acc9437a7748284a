"""The webhook outbox: every event to deliver, durable until delivered or given up.

An event is our ``evt_`` id (the ``webhook-id`` every attempt carries, so receivers dedupe on
it), the job, the target URL, the body exactly as first built (every retry sends the same
bytes), the owner's key name (whose secret signs it), when it was made, how many attempts
failed, when the next is due, and how it ended. Callers can rely on (the contract suite,
``tests/contract/test_webhook_outbox.py``, runs every implementation):

* ``add`` keeps one event per job, type and URL, whoever adds it and however often: a job
  settled twice, or heard settling by several instances, makes one event (the first one's id);
* ``claim`` hands each due event to one caller, leased until ``now + lease`` under a token of
  that claim (``OutboxEvent.claim``): nobody else gets it while the lease holds, and the holder
  pushes it on with ``renew`` while its delivery runs. An event whose holder died is due again
  when the lease lapses, for anyone;
* ``failed`` and ``gave_up`` count only from the claim that holds the event (a holder whose
  lease lapsed and was taken over cannot reschedule its successor's delivery); ``delivered``
  counts from anyone who sent it, since the receiver has it;
* ``pending`` counts the events neither delivered nor given up, and tells the oldest one's age.

``SqliteWebhookOutbox`` keeps the rows in the job store's SQLite file (one process: the claim
tokens live in its memory; after a restart the old leases simply lapse);
``router.store.redis_outbox`` shares one outbox across a fleet.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass, replace
from typing import Protocol

from router.store.side_tables import SideTables

__all__ = ["OutboxEvent", "SqliteWebhookOutbox", "WebhookOutbox", "new_claim"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, type TEXT NOT NULL, url TEXT NOT NULL,
    owner TEXT NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL,
    delivered_at REAL, gave_up_at REAL, last_error TEXT,
    UNIQUE (job_id, type, url));
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (due_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
"""
_PENDING = "delivered_at IS NULL AND gave_up_at IS NULL"


@dataclass(slots=True, frozen=True)
class OutboxEvent:
    id: str  # evt_...: the webhook-id
    job_id: str
    type: str  # video.completed | video.failed
    url: str
    owner: str  # the client key's name
    body: bytes
    created_at: float
    attempts: int = 0
    claim: str = ""  # the token of the claim that handed it out (empty until claimed)


class WebhookOutbox(Protocol):
    async def open(self) -> None: ...
    async def add(self, event: OutboxEvent) -> bool: ...
    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxEvent]: ...
    async def renew(self, event: OutboxEvent, until: float) -> bool: ...
    async def delivered(self, event: OutboxEvent, now: float) -> None: ...
    async def failed(self, event: OutboxEvent, due_at: float, error: str) -> bool: ...
    async def gave_up(self, event: OutboxEvent, now: float, error: str) -> bool: ...
    async def pending(self) -> tuple[int, float | None]: ...
    async def close(self) -> None: ...


def new_claim() -> str:
    """A token naming one claim: unique across the fleet's instances and restarts."""
    return secrets.token_hex(12)


class SqliteWebhookOutbox:
    """The outbox in the job store's file; the live claims in this process's memory."""

    __slots__ = ("_claims", "_db")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = SideTables(path, _SCHEMA)
        self._claims: dict[str, str] = {}  # event id -> token of the claim holding it

    async def open(self) -> None:
        await self._db.open()

    async def add(self, event: OutboxEvent) -> bool:
        """Keep ``event`` (due at once); False when the job already has it for that URL."""
        row = (
            event.id,
            event.job_id,
            event.type,
            event.url,
            event.owner,
            event.body,
            event.created_at,
            event.created_at,
        )

        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO webhook_outbox (id, job_id, type, url, owner, body,"
                " created_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return cursor.rowcount == 1

        return await self._db.run(insert)

    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxEvent]:
        """Up to ``limit`` due events, each leased to the caller until ``now + lease``."""

        def take(conn: sqlite3.Connection) -> list[OutboxEvent]:
            rows = conn.execute(
                "SELECT id, job_id, type, url, owner, body, created_at, attempts"
                f" FROM webhook_outbox WHERE {_PENDING} AND due_at <= ?"
                " ORDER BY due_at LIMIT ?",
                (now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE webhook_outbox SET due_at = ? WHERE id = ?",
                [(now + lease, row[0]) for row in rows],
            )
            return [OutboxEvent(*row) for row in rows]

        token = new_claim()
        claimed = [replace(event, claim=token) for event in await self._db.run(take)]
        for event in claimed:
            self._claims[event.id] = token
        return claimed

    async def renew(self, event: OutboxEvent, until: float) -> bool:
        """Hold ``event`` until ``until``; False when this claim no longer holds it."""
        if not self._holds(event):
            return False
        return await self._update("due_at = ?", (until,), event.id)

    async def delivered(self, event: OutboxEvent, now: float) -> None:
        if self._holds(event):
            del self._claims[event.id]
        await self._update("delivered_at = ?, last_error = NULL", (now,), event.id)

    async def failed(self, event: OutboxEvent, due_at: float, error: str) -> bool:
        return await self._end_claim(
            event, "attempts = attempts + 1, due_at = ?, last_error = ?", (due_at, error)
        )

    async def gave_up(self, event: OutboxEvent, now: float, error: str) -> bool:
        return await self._end_claim(
            event, "attempts = attempts + 1, gave_up_at = ?, last_error = ?", (now, error)
        )

    async def pending(self) -> tuple[int, float | None]:
        """Events not yet delivered (nor given up), and when the oldest of them was made."""

        def count(conn: sqlite3.Connection) -> tuple[int, float | None]:
            found = conn.execute(
                f"SELECT count(*), min(created_at) FROM webhook_outbox WHERE {_PENDING}"
            ).fetchone()
            return int(found[0]), found[1]

        return await self._db.run(count)

    async def close(self) -> None:
        self._claims.clear()
        await self._db.close()

    async def _end_claim(
        self, event: OutboxEvent, assignments: str, values: tuple[object, ...]
    ) -> bool:
        """Record how the attempt of the claim holding ``event`` went; False when it does not."""
        if not self._holds(event):
            return False
        del self._claims[event.id]
        return await self._update(assignments, values, event.id)

    def _holds(self, event: OutboxEvent) -> bool:
        return bool(event.claim) and self._claims.get(event.id) == event.claim

    async def _update(self, assignments: str, values: tuple[object, ...], event_id: str) -> bool:
        """Change a pending event; False when it is no longer pending."""
        return await self._db.run(
            lambda conn: (
                conn.execute(
                    f"UPDATE webhook_outbox SET {assignments} WHERE id = ? AND {_PENDING}",
                    (*values, event_id),
                ).rowcount
                == 1
            )
        )
