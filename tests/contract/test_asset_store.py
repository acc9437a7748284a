"""The ``AssetStore`` contract, run against every backend: a local directory and S3 (a real
SeaweedFS server). A backend passes when it stores whole objects or nothing, reads any byte
range, lists and deletes, whatever the object's size."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.assets.base import AssetStore, AssetStoreError
from router.assets.local import LocalAssetStore
from router.assets.s3 import PART_BYTES, S3AssetStore
from tests.contract.seaweed import SeaweedS3

KEY = "videos/video_0001/video"


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AssetStore]:
    backend: AssetStore
    if request.param == "local":
        backend = LocalAssetStore(tmp_path / "assets")
    else:
        seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
        backend = S3AssetStore(seaweed.assets(f"contract-{secrets.token_hex(4)}/"))
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: AssetStore, key: str, start: int, stop: int) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, stop)])


class Broken(Exception):
    """The source of a copy failed part-way."""


async def breaks_after(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise Broken


async def test_a_stored_object_reads_back_whole_and_by_range(store: AssetStore) -> None:
    data = secrets.token_bytes(300_000)
    assert await store.put(KEY, chunks_of(data), "video/mp4") == len(data)
    found = await store.stat(KEY)
    assert found is not None and (found.key, found.size) == (KEY, len(data))
    assert await read_all(store, KEY, 0, len(data)) == data
    assert await read_all(store, KEY, 1000, 1010) == data[1000:1010]
    assert await read_all(store, KEY, len(data) - 1, len(data)) == data[-1:]


async def test_an_object_larger_than_one_upload_part_round_trips(store: AssetStore) -> None:
    data = secrets.token_bytes(PART_BYTES + PART_BYTES // 2)
    assert await store.put(KEY, chunks_of(data, 1 << 20), "video/mp4") == len(data)
    digest = hashlib.sha256()
    async for chunk in store.read(KEY, 0, len(data)):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (
        await read_all(store, KEY, PART_BYTES - 5, PART_BYTES + 5)
        == data[PART_BYTES - 5 : PART_BYTES + 5]
    )


async def test_a_put_that_fails_part_way_leaves_nothing_visible(store: AssetStore) -> None:
    with pytest.raises(Broken):
        await store.put(KEY, breaks_after(b"half of a video"), "video/mp4")
    assert await store.stat(KEY) is None
    assert [o async for o in store.objects()] == []


async def test_a_failed_replacement_keeps_the_old_object(store: AssetStore) -> None:
    await store.put(KEY, chunks_of(b"the old video"), "video/mp4")
    with pytest.raises(Broken):
        await store.put(KEY, breaks_after(b"the new vid"), "video/mp4")
    assert await read_all(store, KEY, 0, 13) == b"the old video"
    await store.put(KEY, chunks_of(b"the new video!"), "video/mp4")
    assert await read_all(store, KEY, 0, 14) == b"the new video!"


async def test_objects_lists_what_is_stored_and_delete_removes_it(store: AssetStore) -> None:
    keys = {f"videos/video_000{n}/video": n * 10 + 1 for n in range(3)}
    for key, size in keys.items():
        await store.put(key, chunks_of(b"x" * size), "video/mp4")
    listed = {o.key: o.size async for o in store.objects()}
    assert listed == keys
    await store.delete("videos/video_0000/video")
    await store.delete("videos/video_0000/video")  # gone already: not an error
    assert await store.stat("videos/video_0000/video") is None
    assert {o.key async for o in store.objects()} == set(keys) - {"videos/video_0000/video"}


async def test_reading_a_missing_object_is_an_asset_store_error(store: AssetStore) -> None:
    with pytest.raises(AssetStoreError):
        await read_all(store, "videos/video_none/video", 0, 10)


async def test_local_open_clears_what_a_crash_left_half_written(tmp_path: Path) -> None:
    """The local backend's part of "never half-written": a crash leaves only ``.partial``
    entries whose lock nobody holds (a killed process's ``flock`` goes with it)."""
    root = tmp_path / "assets"
    (root / ".partial" / "d1ed").mkdir(parents=True)
    (root / ".partial" / "d1ed" / "f00d").write_bytes(b"half a video")
    (root / ".partial" / "d1ed.lock").touch()  # its owner died: nothing holds it
    (root / ".partial" / "0ld").write_bytes(b"half a video of an older layout")
    store = LocalAssetStore(root)
    await store.open()
    try:
        left = [p for p in (root / ".partial").rglob("*") if p.is_file() and p.stat().st_size]
        assert left == []
        assert not (root / ".partial" / "d1ed.lock").exists()
        assert [o async for o in store.objects()] == []
        with pytest.raises(ValueError, match="bad asset key"):
            store.local_path("../escape")
    finally:
        await store.close()
    assert list((root / ".partial").iterdir()) == []  # a clean close leaves nothing


async def test_local_open_leaves_a_live_copy_of_another_process_alone(tmp_path: Path) -> None:
    """Two stores on one directory (``serve --workers``, a shared disk): the second one's
    start must not delete the first one's copy in flight."""
    root = tmp_path / "assets"
    first, second = LocalAssetStore(root), LocalAssetStore(root)
    await first.open()
    halfway = asyncio.Event()
    go_on = asyncio.Event()

    async def slowly() -> AsyncIterator[bytes]:
        yield b"a" * (2 << 20)  # past one write batch: on disk under .partial
        halfway.set()
        await go_on.wait()
        yield b"b" * 1000

    putting = asyncio.create_task(first.put("videos/video_0001/video", slowly(), "video/mp4"))
    try:
        await halfway.wait()
        await second.open()
        go_on.set()
        assert await putting == (2 << 20) + 1000
        found = await second.stat("videos/video_0001/video")
        assert found is not None and found.size == (2 << 20) + 1000
    finally:
        go_on.set()
        await first.close()
        await second.close()
