"""The relay dialect's create: fields -> catalogue size and seconds, and its 400s, over loopback."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import BOB, ProxyFactory, RunningProxy, local_store, sim_provider


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a", render_seconds=30)])


@pytest.mark.parametrize(
    ("fields", "size", "seconds"),
    [
        ({"model": "sora-2", "aspect_ratio": "16:9", "duration": "10"}, "1280x720", 10),
        ({"model": "sora-2", "aspect_ratio": "9:16", "duration": 15}, "720x1280", 15),
        ({"model": "sora-2", "aspect_ratio": "16:9", "hd": True}, "1280x720", 4),
        ({"model": "sora-2-pro", "aspect_ratio": "16:9", "hd": True}, "1792x1024", 4),
        ({"model": "sora-2-pro", "aspect_ratio": "9:16", "hd": True}, "1024x1792", 4),
        ({"model": "sora-2-pro", "aspect_ratio": "16:9", "hd": False}, "1280x720", 4),
        ({"model": "sora-2-pro", "hd": True}, "1024x1792", 4),  # the default size's orientation
        ({}, "720x1280", 4),  # the catalogue's defaults
    ],
)
async def test_aspect_ratio_hd_and_duration_pick_the_catalogue_size_and_seconds(
    proxy: RunningProxy, fields: dict[str, Any], size: str, seconds: int
) -> None:
    task_id = await proxy.relay().create(prompt="p", **fields)
    job = local_store(proxy.app).get(task_id)
    assert job is not None and (job.size, job.seconds) == (size, seconds)
    (upstream,) = proxy.simulator("sim-a").jobs.values()
    assert upstream.size == size


async def test_sizes_come_from_the_configured_catalogue(proxy_factory: ProxyFactory) -> None:
    catalogue = {"sora-2": {"sizes": ["1280x720", "1920x1080", "1080x1920"], "seconds": [10]}}
    proxy = await proxy_factory([sim_provider("sim-a")], models=catalogue)
    relay = proxy.relay()
    hd = await relay.create(prompt="p", aspect_ratio="16:9", hd=True, duration="10")
    standard = await relay.create(prompt="p", aspect_ratio="16:9", duration="10")
    portrait = await relay.create(prompt="p", aspect_ratio="9:16", hd=False, duration="10")
    jobs = [local_store(proxy.app).get(task_id) for task_id in (hd, standard, portrait)]
    assert [job.size for job in jobs if job] == ["1920x1080", "1280x720", "1080x1920"]


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("unknown field", {"seed": 7}, "seed"),
    ("no prompt", {"prompt": None}, "prompt"),
    ("unknown model", {"model": "sora-9"}, "model"),
    ("model not a string", {"model": ["sora-2"]}, "model"),
    ("aspect ratio unknown", {"aspect_ratio": "4:3"}, "aspect_ratio"),
    ("hd not a bool", {"hd": "yes"}, "hd"),
    ("duration not offered", {"duration": "7"}, "duration"),
    ("duration not a number", {"duration": "ten"}, "duration"),
    ("images not a list", {"images": "https://img.example/a.png"}, "images"),
    ("two images", {"images": ["https://a.example/1.png", "https://a.example/2.png"]}, "images"),
    ("image not a url", {"images": ["ftp://img.example/a.png"]}, "images"),
]


@pytest.mark.parametrize(("case", "change", "param"), BAD, ids=[c[0] for c in BAD])
async def test_bad_fields_are_400s_naming_the_relay_field(
    proxy: RunningProxy, case: str, change: dict[str, Any], param: str
) -> None:
    body = {"prompt": "p", "model": "sora-2", "aspect_ratio": "16:9", "duration": "10", **change}
    status, reply = await proxy.relay().post({k: v for k, v in body.items() if v is not None})
    assert status == 400, case
    assert set(reply["error"]) == {"message", "type", "param", "code"}
    assert reply["error"]["param"] == param
    assert len(local_store(proxy.app)) == 0
    assert proxy.stats("sim-a").creates_received == 0


async def test_an_image_url_or_data_url_reaches_the_upstream(proxy: RunningProxy) -> None:
    relay = proxy.relay()
    for image in ("https://img.example/a.png", "data:image/png;base64,iVBORw0KGgo="):
        await relay.create(prompt="p", images=[image])
    references = [job.input_reference for job in proxy.simulator("sim-a").jobs.values()]
    assert references == ["https://img.example/a.png", "data:image/png;base64,iVBORw0KGgo="]


async def test_keys_and_tenancy_are_those_of_the_openai_dialect(proxy: RunningProxy) -> None:
    task_id = await proxy.relay().create(prompt="mine")
    assert (await proxy.relay(BOB).get(task_id))[0] == 404
    assert (await proxy.relay().get("video_" + "0" * 48))[0] == 404
    status, body = await proxy.relay("sk-wrong").post({"prompt": "p"})
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{proxy.url}/v2/videos/generations/{task_id}") as response,
    ):
        assert response.status == 401
