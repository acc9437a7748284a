"""Characters the proxy owns: the uploaded clip, its owner, and its id on each provider.

A character is ours (``char_`` + 32 hex digits) and keeps its clip, so it can be created on
any provider the first time a render casting it goes there (``router.jobs.operations``); the
id each provider gave it is remembered per provider, and a render that fails over takes its
characters along. ``CharacterStore`` is the seam (its contract suite:
``tests/contract/test_character_store.py``); ``SqliteCharacterStore`` keeps two tables in the
job store's SQLite file (``router.store.side_tables``), every character's name and owner in
memory, and reads a clip from disk only when a provider needs it;
``router.store.redis_characters`` keeps them in Redis for a fleet, so a character made through
one instance is cast through any other.

It decides nothing about who may see a character: ``router.api`` checks the owner.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Protocol

from providers.base import SourceVideo
from router.store.side_tables import SideTables

__all__ = ["Character", "CharacterStore", "SqliteCharacterStore", "new_character_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS characters (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL, created_at REAL NOT NULL,
    filename TEXT NOT NULL, content_type TEXT NOT NULL, clip BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS character_uploads (
    character_id TEXT NOT NULL, provider TEXT NOT NULL, upstream_id TEXT NOT NULL,
    PRIMARY KEY (character_id, provider));
"""


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
    async def get(self, character_id: str) -> Character | None: ...
    async def add(self, character: Character, clip: SourceVideo) -> None: ...
    async def clip(self, character_id: str) -> SourceVideo: ...
    async def upstream_id(self, character_id: str, provider: str) -> str | None: ...
    async def remember(self, character_id: str, provider: str, upstream_id: str) -> None: ...
    async def close(self) -> None: ...


class SqliteCharacterStore:
    """Characters in the job store's file; names and owners in memory."""

    __slots__ = ("_characters", "_db", "_uploads")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = SideTables(path, _SCHEMA)
        self._characters: dict[str, Character] = {}
        self._uploads: dict[tuple[str, str], str] = {}  # (character, provider) -> upstream id

    async def open(self) -> None:
        await self._db.open()
        characters, self._uploads = await self._db.run(_load)
        self._characters = {c.id: c for c in characters}

    async def get(self, character_id: str) -> Character | None:
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
        await self._db.run(
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

        return await self._db.run(read)

    async def upstream_id(self, character_id: str, provider: str) -> str | None:
        return self._uploads.get((character_id, provider))

    async def remember(self, character_id: str, provider: str, upstream_id: str) -> None:
        row = (character_id, provider, upstream_id)
        await self._db.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO character_uploads VALUES (?, ?, ?)", row
            )
        )
        self._uploads[character_id, provider] = upstream_id

    async def close(self) -> None:
        await self._db.close()


def _load(conn: sqlite3.Connection) -> tuple[list[Character], dict[tuple[str, str], str]]:
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
    return characters, uploads
