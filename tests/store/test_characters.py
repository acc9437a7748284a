"""The character store keeps characters, their clips and their ids upstream across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.base import SourceVideo
from router.store.characters import Character, SqliteCharacterStore, new_character_id
from router.store.sqlite import SqliteJobStore


async def test_characters_and_their_upstream_ids_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    jobs = SqliteJobStore(path)  # the file is shared with the job store
    await jobs.open()
    store = SqliteCharacterStore(path)
    await store.open()
    character = Character(id=new_character_id(), owner="alice", name="Mossy", created_at=1.0)
    await store.add(character, SourceVideo(data=b"clip", filename="m.mp4"))
    await store.remember(character.id, "sim-a", "char_up")
    await store.close()
    await jobs.close()

    again = SqliteCharacterStore(path)
    await again.open()
    try:
        assert again.get(character.id) == character
        assert (await again.clip(character.id)).data == b"clip"
        assert await again.upstream_id(character.id, "sim-a") == "char_up"
        assert await again.upstream_id(character.id, "sim-b") is None
        with pytest.raises(KeyError):
            await again.clip("char_missing")
    finally:
        await again.close()
    with pytest.raises(RuntimeError, match="not open"):
        await again.clip(character.id)
