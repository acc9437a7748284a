"""Characters in Redis, for a fleet: one hash per character, ``{sora:c:<id>}:character``.

The hash holds the character (``o`` owner, ``n`` name, ``t`` created at), its clip (``f``
filename, ``c`` content type, ``d`` the bytes) and the id each provider gave it (``u:<provider>``),
so every command touches one key and a Cluster routes each by the character's own tag. A
character never changes after ``add`` except to learn more upstream ids; two instances that
upload it to one provider at once both remember theirs and the later one stays (either works).
Clips are kept in full: a character clip is short (its upload is bounded by
``server.max_body_bytes``), and the memory it takes is the operator's to plan for.

It decides nothing about who may see a character: ``router.api`` checks the owner.
"""

from __future__ import annotations

from typing import cast

from redis.typing import EncodableT, FieldT

from providers.base import SourceVideo
from router.store.characters import Character
from router.store.redis_client import RedisClient

__all__ = ["RedisCharacterStore"]


def _key(character_id: str) -> str:
    return f"{{sora:c:{character_id}}}:character"


class RedisCharacterStore:
    """The fleet's characters; see the module docstring."""

    __slots__ = ("_client",)

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def open(self) -> None:
        """Nothing to open: the process's Redis client is the app's."""

    async def get(self, character_id: str) -> Character | None:
        found = cast(
            list[bytes | None], await self._client.hmget(_key(character_id), ["o", "n", "t"])
        )
        owner, name, created_at = found
        if owner is None or name is None or created_at is None:
            return None
        return Character(character_id, owner.decode(), name.decode(), float(created_at))

    async def add(self, character: Character, clip: SourceVideo) -> None:
        """Keep ``character`` and its clip; returns once Redis has it."""
        fields: dict[FieldT, EncodableT] = {
            "o": character.owner,
            "n": character.name,
            "t": repr(character.created_at),
            "f": clip.filename,
            "c": clip.content_type,
            "d": clip.data or b"",
        }
        await self._client.hset(_key(character.id), mapping=fields)

    async def clip(self, character_id: str) -> SourceVideo:
        found = cast(
            list[bytes | None], await self._client.hmget(_key(character_id), ["f", "c", "d"])
        )
        filename, content_type, data = found
        if filename is None or content_type is None or data is None:
            raise KeyError(character_id)
        return SourceVideo(
            data=bytes(data), filename=filename.decode(), content_type=content_type.decode()
        )

    async def upstream_id(self, character_id: str, provider: str) -> str | None:
        found = cast(bytes | None, await self._client.hget(_key(character_id), f"u:{provider}"))
        return None if found is None else found.decode()

    async def remember(self, character_id: str, provider: str, upstream_id: str) -> None:
        await self._client.hset(_key(character_id), f"u:{provider}", upstream_id)

    async def close(self) -> None:
        """Nothing to close: the app closes its Redis client."""
