"""Thumbnails for every video: made with ffmpeg where the upstream has none (acceptance 5).

The relay kind has only the video; the proxy makes a WebP still and a JPEG sprite sheet from
its stored copy. ffprobe (from the same Debian package as ffmpeg) checks they decode.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from router import appkeys as keys
from router.records.job import CopyState
from tests.assets.helpers import copied
from tests.conftest import ALICE, ProxyFactory, SimulatorFactory, finished_job, upstream_provider

AUTH = {"Authorization": f"Bearer {ALICE}"}


async def probe(path: Path) -> dict[str, object]:
    """ffprobe's view of the first stream of ``path``."""
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    assert process.returncode == 0
    streams = json.loads(out)["streams"]
    assert isinstance(streams, list) and streams
    first = streams[0]
    assert isinstance(first, dict)
    return first


async def test_a_relay_render_gets_a_webp_thumbnail_and_a_jpeg_spritesheet(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    tmp_path: Path,
    backend: dict[str, str],
) -> None:
    sim = await simulators()
    proxy = await proxy_factory([upstream_provider("relay", "relay", sim)], assets=backend)
    video = await proxy.client().videos.create(prompt="a hummingbird")
    job = await copied(proxy, (await finished_job(proxy, video.id)).id)
    assert job.copy is CopyState.STORED
    assert {a.variant: a.generated for a in job.stored} == {
        "video": False,
        "thumbnail": True,
        "spritesheet": True,
    }
    for variant, content_type, codec in [
        ("thumbnail", "image/webp", "webp"),
        ("spritesheet", "image/jpeg", "mjpeg"),
    ]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{proxy.url}/v1/videos/{job.id}/content?variant={variant}", headers=AUTH
            ) as r,
        ):
            assert r.status == 200
            assert r.content_type == content_type
            body = await r.read()
        saved = tmp_path / variant
        saved.write_bytes(body)
        stream = await probe(saved)
        assert stream["codec_name"] == codec
        if variant == "spritesheet":  # 5 by 5 tiles of 160 pixels
            assert stream["width"] == 800
    assert proxy.app[keys.METRICS].thumbnails.labels("made")._value.get() == 2


async def test_without_ffmpeg_the_copy_is_stored_without_images(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    """Thumbnails off: the video is stored; asking a relay render for a thumbnail is a 400."""
    sim = await simulators()
    proxy = await proxy_factory(
        [upstream_provider("relay", "relay", sim)], assets={"thumbnails": False}
    )
    video = await proxy.client().videos.create(prompt="a hummingbird")
    job = await copied(proxy, (await finished_job(proxy, video.id)).id)
    assert [a.variant for a in job.stored] == ["video"]
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/v1/videos/{job.id}/content?variant=thumbnail", headers=AUTH) as r,
    ):
        assert r.status == 400
