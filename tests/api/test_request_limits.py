"""How many images a create may carry (issue 5): Sora takes one reference image.

A repeated form field used to keep its last value silently; now it is a 400 naming the field.
The body cap (413) and the prompt length are in ``tests/test_api_errors.py``; two relay
``images`` in ``tests/test_api_relay.py``.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.conftest import ALICE, ProxyFactory, RunningProxy, local_store, sim_provider

PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a", render_seconds=30)])


async def send(proxy: RunningProxy, path: str, data: Any) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http,
        http.post(f"{proxy.url}{path}", data=data) as response,
    ):
        return response.status, await response.json()


def form(*fields: tuple[str, str | bytes]) -> aiohttp.FormData:
    data = aiohttp.FormData()
    for name, value in fields:
        if isinstance(value, bytes):
            data.add_field(name, value, filename=f"{name}.png", content_type="image/png")
        else:
            data.add_field(name, value)
    return data


async def test_two_uploaded_images_are_a_400_and_nothing_is_rendered(proxy: RunningProxy) -> None:
    status, body = await send(
        proxy,
        "/v1/videos",
        form(("prompt", "a boat"), ("input_reference", PNG), ("input_reference", PNG + b"2")),
    )
    assert status == 400
    error = body["error"]
    assert (error["param"], error["code"]) == ("input_reference", "invalid_value")
    assert "given 2 times" in error["message"] and "one reference image" in error["message"]
    assert proxy.stats("sim-a").creates_received == 0
    assert len(local_store(proxy.app)) == 0


async def test_one_uploaded_image_is_accepted(proxy: RunningProxy) -> None:
    status, body = await send(
        proxy, "/v1/videos", form(("prompt", "a boat"), ("input_reference", PNG))
    )
    assert status == 200, body
    (upstream,) = proxy.simulator("sim-a").jobs.values()
    assert upstream.input_bytes == PNG


@pytest.mark.parametrize(
    "fields",
    [
        [("prompt", "a boat"), ("prompt", "a plane")],
        [("prompt", "a boat"), ("seconds", "4"), ("seconds", "8"), ("seconds", "12")],
        [("prompt", "a boat"), ("input_reference", PNG), ("input_reference", "https://x/a.png")],
    ],
    ids=["prompt twice", "seconds three times", "a file and a url"],
)
async def test_any_repeated_field_is_a_400_naming_it(
    proxy: RunningProxy, fields: list[tuple[str, str | bytes]]
) -> None:
    repeated = fields[-1][0]
    count = sum(name == repeated for name, _ in fields)
    status, body = await send(proxy, "/v1/videos", form(*fields))
    assert status == 400
    assert body["error"]["param"] == repeated
    assert f"'{repeated}' was given {count} times" in body["error"]["message"]
    assert proxy.stats("sim-a").creates_received == 0


async def test_a_repeated_field_in_a_url_encoded_body_is_a_400(proxy: RunningProxy) -> None:
    status, body = await send(proxy, "/v1/videos", [("prompt", "a"), ("prompt", "b")])
    assert (status, body["error"]["param"]) == (400, "prompt")


async def test_a_json_list_of_images_is_a_400(proxy: RunningProxy) -> None:
    images = [{"image_url": "https://x/a.png"}, {"image_url": "https://x/b.png"}]
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http,
        http.post(
            f"{proxy.url}/v1/videos", json={"prompt": "a", "input_reference": images}
        ) as response,
    ):
        body = await response.json()
    assert (response.status, body["error"]["param"]) == (400, "input_reference")
    assert proxy.stats("sim-a").creates_received == 0
