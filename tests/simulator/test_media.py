"""The simulated upstream's media files: real headers, streaming and byte ranges."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.mp4 import probe
from providers.simulator.media import Variant, make_asset, mp4_head
from tests.sim_rig import BEARER, Rig, StartRig
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture


@pytest.mark.parametrize(
    ("variant", "content_type", "head", "tail"),
    [
        ("thumbnail", "image/webp", b"RIFF", b""),
        ("spritesheet", "image/jpeg", b"\xff\xd8\xff", b"\xff\xd9"),
    ],
)
async def test_image_variants_have_real_headers(
    rig: Rig, variant: str, content_type: str, head: bytes, tail: bytes
) -> None:
    video = await rig.create()
    rig.clock.advance(25)
    body, response = await rig.call("GET", f"/v1/videos/{video['id']}/content?variant={variant}")
    assert response.content_type == content_type
    assert body.startswith(head) and body.endswith(tail)
    if variant == "thumbnail":
        assert body[8:12] == b"WEBP"
        assert int.from_bytes(body[4:8], "little") == len(body) - 8


async def test_range_requests_get_206_with_content_range(rig: Rig) -> None:
    video = await rig.create()
    rig.clock.advance(25)
    path = f"/v1/videos/{video['id']}/content"
    whole, _ = await rig.call("GET", path)
    for header, expected, content_range in [
        ("bytes=0-99", whole[:100], "bytes 0-99/4096"),
        ("bytes=4000-", whole[4000:], "bytes 4000-4095/4096"),
        ("bytes=-10", whole[-10:], "bytes 4086-4095/4096"),
        ("bytes=4090-9999", whole[4090:], "bytes 4090-4095/4096"),
    ]:
        body, response = await rig.call(
            "GET", path, headers={**BEARER, "Range": header}, expect=206
        )
        assert body == expected
        assert response.headers["Content-Range"] == content_range
        assert response.headers["Accept-Ranges"] == "bytes"
    _, response = await rig.call(
        "GET", path, headers={**BEARER, "Range": "bytes=4096-"}, expect=416
    )
    assert response.headers["Content-Range"] == "bytes */4096"


async def test_a_megabyte_video_streams_whole(start_rig: StartRig) -> None:
    rig = await start_rig(video_bytes=1_000_000)
    video = await rig.create()
    rig.clock.advance(25)
    body, response = await rig.call("GET", f"/v1/videos/{video['id']}/content")
    assert response.headers["Content-Length"] == "1000000"
    info = probe(body)  # the moov box says what was rendered
    assert info is not None and (info.size, info.seconds) == ("720x1280", 4)
    head = mp4_head(video["id"], 720, 1280, 4)
    assert body.startswith(head)  # playable, and a free box after it holds the rest
    assert body[len(head) + 4 : len(head) + 8] == b"free"
    assert int.from_bytes(body[len(head) : len(head) + 4], "big") == 1_000_000 - len(head)
    across_chunks = {**BEARER, "Range": "bytes=65530-65545"}
    part, _ = await rig.call(
        "GET", f"/v1/videos/{video['id']}/content", headers=across_chunks, expect=206
    )
    assert part == body[65530:65546]


@settings(max_examples=60, deadline=None)
@given(start=st.integers(0, 8192), length=st.integers(0, 8192), chunk_size=st.integers(1, 5000))
def test_any_slice_of_an_asset_matches_the_whole_file(
    start: int, length: int, chunk_size: int
) -> None:
    asset = make_asset("video_x", Variant.SPRITESHEET, 4096)
    body_length = asset.size - len(asset.head) - len(asset.tail)
    filler = (asset.block * 3)[len(asset.head) : len(asset.head) + body_length]
    whole = asset.head + filler + asset.tail  # the block is indexed by absolute offset
    stop = min(start + length, asset.size)
    assert b"".join(asset.chunks(start, stop, chunk_size)) == whole[start:stop]


async def test_the_simulated_mp4_decodes_with_ffmpeg(tmp_path: Path) -> None:
    """One frame a second at 1/40 of the render's size: enough for ffmpeg to make thumbnails
    of; the track header still says the render's size."""
    asset = make_asset("video_decodable", Variant.VIDEO, 50_000)
    path = tmp_path / "video.mp4"
    path.write_bytes(b"".join(asset.chunks(0, asset.size)))
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-count_frames", "-print_format", "json", "-show_streams",
        str(path), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0
    (stream,) = json.loads(out)["streams"]
    assert (stream["width"], stream["height"]) == (18, 32)
    assert int(stream["nb_read_frames"]) == 4
    info = probe(path.read_bytes())
    assert info is not None and (info.size, info.seconds) == ("720x1280", 4)
