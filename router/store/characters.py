"""Characters the proxy owns: the uploaded clip, its owner, and its id on each provider.

A character is ours (``char_`` + 32 hex digits) and keeps its clip, so it can be created on
any provider the first time a render casting it goes there (``router.jobs.operations``); the
id each provider gave it is remembered per provider, and a render that fails over takes its
characters along. ``CharacterStore`` is the seam; ``SqliteCharacterStore`` keeps two tables in
the job store's SQLite file (its own connection, WAL; SQLite serialises the two writers),
every character's name and owner in memory, and reads a clip from disk only when a provider
needs it. Calls are rare (uploads, first use per provider), so each runs on a worker thread
of its own rather than in the job store's batching writer.

It decides nothing about who may see a character: ``router.api`` checks the owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from providers.base import SourceVideo

__all__ = ["Character", "CharacterStore", "SqliteCharacterStore", "new_character_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS characters (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, created_at REAL NOT NULL,
    filename TEXT NOT NULL, content_type TEXT NOT NULL, clip BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS character_uploads (
    character_id TEXT NOT NULL, provider TEXT NOT NULL, upstream_id TEXT NOT NULL,
    PRIMARY KEY (character_id, provider));
"""


_T = TypeVar("_T")


def new_character_id() -> str:
    return "char_" + secrets.token_hex(16)


@dataclass(slots=True, frozen=True)
class Character:
    """A character as clients see it, and whose it is."""

    id: str
    owner: str  # the client key's name
    name: str
    created_at: float


class CharacterStore(Protocol):
    async def open(self) -> None: ...
    def get(self, character_id: str) -> Character | None: ...
    async def add(self, character: Character, clip: SourceVideo) -> None: ...
    async def clip(self, character_id: str) -> SourceVideo: ...
    async def upstream_id(self, character_id: str, provider: str) -> str | None: ...
    async def remember(self, character_id: str, provider: str, upstream_id: str) -> None: ...
    async def close(self) -> None: ...


class SqliteCharacterStore:
    """Characters in the job store's file; names and owners in memory."""

    __slots__ = ("_characters", "_conn", "_lock", "_path", "_uploads")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one connection, used by one worker thread at a time
        self._characters: dict[str, Character] = {}
        self._uploads: dict[tuple[str, str], str] = {}  # (character, provider) -> upstream id

    async def open(self) -> None:
        self._conn, characters, uploads = await asyncio.to_thread(_open, self._path)
        self._characters = {c.id: c for c in characters}
        self._uploads = uploads

    def get(self, character_id: str) -> Character | None:
        return self._characters.get(character_id)

    async def add(self, character: Character, clip: SourceVideo) -> None:
        """Keep ``character`` and its clip durably; returns once committed."""
        row = (
            character.id,
            character.owner,
            character.name,
            character.created_at,
            clip.filename,
            clip.content_type,
            clip.data or b"",
        )
        await self._run(
            lambda conn: conn.execute("INSERT INTO characters VALUES (?, ?, ?, ?, ?, ?, ?)", row)
        )
        self._characters[character.id] = character

    async def clip(self, character_id: str) -> SourceVideo:
        def read(conn: sqlite3.Connection) -> SourceVideo:
            found = conn.execute(
                "SELECT filename, content_type, clip FROM characters WHERE id = ?",
                (character_id,),
            ).fetchone()
            if found is None:
                raise KeyError(character_id)
            filename, content_type, data = found
            return SourceVideo(data=data, filename=filename, content_type=content_type)

        return await self._run(read)

    async def upstream_id(self, character_id: str, provider: str) -> str | None:
        return self._uploads.get((character_id, provider))

    async def remember(self, character_id: str, provider: str, upstream_id: str) -> None:
        row = (character_id, provider, upstream_id)
        await self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO character_uploads VALUES (?, ?, ?)", row
            )
        )
        self._uploads[character_id, provider] = upstream_id

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(conn.close)

    async def _run(self, call: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the character store is not open")

        def locked() -> _T:
            with self._lock, conn:  # ``with conn``: one transaction, committed or rolled back
                return call(conn)

        return await asyncio.to_thread(locked)


def _open(
    path: Path,
) -> tuple[sqlite3.Connection, list[Character], dict[tuple[str, str], str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        characters = [
            Character(*row)
            for row in conn.execute("SELECT id, owner, name, created_at FROM characters")
        ]
        uploads = {
            (character, provider): upstream
            for character, provider, upstream in conn.execute(
                "SELECT character_id, provider, upstream_id FROM character_uploads"
            )
        }
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        raise
    return conn, characters, uploads
