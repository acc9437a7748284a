"""The webhook outbox: every event to deliver, durable until delivered or given up.

An event is one row: our ``evt_`` id (the ``webhook-id`` every attempt carries, so receivers
dedupe on it), the job, the target URL, the body exactly as first built (every retry sends the
same bytes), the owner's key name (whose secret signs it), when it was made, how many attempts
failed, when the next is due, and how it ended. ``(job_id, type, url)`` is unique, so a job
settled twice (a restart in between, two instances hearing one event) makes one event.

``WebhookOutbox`` is the seam; ``SqliteWebhookOutbox`` keeps the rows in the job store's SQLite
file (``router.store.side_tables``). ``claim`` hands each due event to
one caller and pushes its due time past the delivery timeout, so an event is never sent twice
at once, and one whose sender died is picked up again after that lease.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Protocol

from router.store.side_tables import SideTables

__all__ = ["OutboxEvent", "SqliteWebhookOutbox", "WebhookOutbox"]

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


class WebhookOutbox(Protocol):
    async def open(self) -> None: ...
    async def add(self, event: OutboxEvent) -> bool: ...
    async def claim(self, now: float, lease: float, limit: int) -> list[OutboxEvent]: ...
    async def delivered(self, event_id: str, now: float) -> None: ...
    async def failed(self, event_id: str, due_at: float, error: str) -> None: ...
    async def gave_up(self, event_id: str, now: float, error: str) -> None: ...
    async def pending(self) -> tuple[int, float | None]: ...
    async def close(self) -> None: ...


class SqliteWebhookOutbox:
    """The outbox in the job store's file."""

    __slots__ = ("_db",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = SideTables(path, _SCHEMA)

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

        return await self._db.run(take)

    async def delivered(self, event_id: str, now: float) -> None:
        await self._update("delivered_at = ?, last_error = NULL", (now,), event_id)

    async def failed(self, event_id: str, due_at: float, error: str) -> None:
        await self._update(
            "attempts = attempts + 1, due_at = ?, last_error = ?", (due_at, error), event_id
        )

    async def gave_up(self, event_id: str, now: float, error: str) -> None:
        await self._update(
            "attempts = attempts + 1, gave_up_at = ?, last_error = ?", (now, error), event_id
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
        await self._db.close()

    async def _update(self, assignments: str, values: tuple[object, ...], event_id: str) -> None:
        await self._db.run(
            lambda conn: conn.execute(
                f"UPDATE webhook_outbox SET {assignments} WHERE id = ?", (*values, event_id)
            )
        )
