"""``SideTables``: a second connection to the job store's SQLite file, for tables of their own.

Characters and the webhook outbox are written rarely (an upload, a settled job, a delivery) and
read rarely, so they skip the job store's batching writer: each call runs on a worker thread,
one at a time per connection, as one transaction (committed, or rolled back when it raises).
WAL mode lets these writes and the job store's interleave; SQLite serialises the writers (a
busy file is waited for up to ``BUSY_TIMEOUT``). The schema is created when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

__all__ = ["BUSY_TIMEOUT", "SideTables"]

_T = TypeVar("_T")
BUSY_TIMEOUT = 10.0  # seconds a write waits for the file while another writer holds it


class SideTables:
    __slots__ = ("_conn", "_lock", "_path", "_schema")

    def __init__(self, path: str | os.PathLike[str], schema: str) -> None:
        self._path = Path(path)
        self._schema = schema
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by one worker thread at a time

    async def open(self) -> None:
        self._conn = await asyncio.to_thread(_connect, self._path, self._schema)

    async def run(self, call: Callable[[sqlite3.Connection], _T]) -> _T:
        """``call`` on a worker thread, as one transaction."""
        conn = self._conn
        if conn is None:
            raise RuntimeError(f"{self._path.name}: these tables are not open")

        def locked() -> _T:
            with self._lock, conn:
                return call(conn)

        return await asyncio.to_thread(locked)

    async def close(self) -> None:
        """Close once every call already running has finished (a call awaited by a cancelled
        task goes on in its thread: closing under it would pull the connection away mid-query)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return

        def locked() -> None:
            with self._lock:
                conn.close()

        await asyncio.to_thread(locked)


def _connect(path: Path, schema: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(schema)
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        raise
    return conn
