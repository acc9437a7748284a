"""The ``CharacterStore`` contract, on SQLite, one Redis and a Redis Cluster: a character made
through one instance is read, with its clip, through any other; the id each provider gave it is
kept per provider and seen by every instance; all of it outlives the process."""

from __future__ import annotations

import pytest

from providers.base import SourceVideo
from router.store.characters import Character, new_character_id
from tests.contract.side_stores import SideStores, side

__all__ = ["side"]

CLIP = SourceVideo(data=b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)), filename="m.mp4")


def mossy() -> Character:
    return Character(id=new_character_id(), owner="alice", name="Mossy", created_at=1.5)


async def test_a_character_made_on_one_instance_is_read_on_another(side: SideStores) -> None:
    a, b = await side.character_store(), await side.character_store()
    character = mossy()
    await a.add(character, CLIP)
    assert await b.get(character.id) == character
    clip = await b.clip(character.id)
    assert (clip.data, clip.filename, clip.content_type) == (CLIP.data, "m.mp4", "video/mp4")
    assert await b.get("char_" + "0" * 32) is None
    with pytest.raises(KeyError):
        await b.clip("char_missing")


async def test_upstream_ids_are_kept_per_provider_for_every_instance(side: SideStores) -> None:
    a, b = await side.character_store(), await side.character_store()
    character = mossy()
    await a.add(character, CLIP)
    assert await b.upstream_id(character.id, "sim-a") is None
    await a.remember(character.id, "sim-a", "char_up_a")
    await b.remember(character.id, "sim-b", "char_up_b")
    assert await b.upstream_id(character.id, "sim-a") == "char_up_a"
    assert await a.upstream_id(character.id, "sim-b") == "char_up_b"
    assert await a.get(character.id) == character  # learning ids changes nothing else


async def test_characters_outlive_the_process(side: SideStores) -> None:
    first = await side.character_store()
    character = mossy()
    await first.add(character, CLIP)
    await first.remember(character.id, "sim-a", "char_up")
    again = await side.reopen_characters()
    assert await again.get(character.id) == character
    assert (await again.clip(character.id)).data == CLIP.data
    assert await again.upstream_id(character.id, "sim-a") == "char_up"
    assert await again.upstream_id(character.id, "sim-b") is None
