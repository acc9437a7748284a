"""Bad input never gives a 5xx; always the OpenAI envelope; nothing stored (issue 2, point 4)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from router import appkeys as keys
from tests.conftest import ALICE, ProxyFactory, RunningProxy, local_store, sim_provider

MAX_BODY = 4096


@pytest.fixture
async def small_proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory(
        [sim_provider("sim-a", render_seconds=30)],
        server={"max_body_bytes": MAX_BODY, "max_prompt_chars": 100},
    )


@pytest.fixture
async def http(small_proxy: RunningProxy) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=small_proxy.url, headers={"Authorization": f"Bearer {ALICE}"}
    ) as session:
        yield session


async def error_of(response: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return dict(body["error"])


JSON_CASES: list[tuple[str, Any, str | None]] = [
    ("empty prompt", {"prompt": ""}, "prompt"),
    ("blank prompt", {"prompt": "   "}, "prompt"),
    ("missing prompt", {"model": "sora-2"}, "prompt"),
    ("prompt not a string", {"prompt": 5}, "prompt"),
    ("prompt too long", {"prompt": "x" * 101}, "prompt"),
    ("seconds not allowed", {"prompt": "a", "seconds": "7"}, "seconds"),
    ("seconds wrong type", {"prompt": "a", "seconds": True}, "seconds"),
    ("seconds float", {"prompt": "a", "seconds": 4.5}, "seconds"),
    ("seconds list", {"prompt": "a", "seconds": [4]}, "seconds"),
    ("size unknown", {"prompt": "a", "size": "999x999"}, "size"),
    ("size wrong type", {"prompt": "a", "size": 720}, "size"),
    ("model unknown", {"prompt": "a", "model": "sora-9"}, "model"),
    ("model wrong type", {"prompt": "a", "model": ["sora-2"]}, "model"),
    ("unknown field", {"prompt": "a", "colour": "blue"}, "colour"),
    ("reference wrong type", {"prompt": "a", "input_reference": 3}, "input_reference"),
    (
        "reference not a url",
        {"prompt": "a", "input_reference": {"image_url": "ftp://x"}},
        "input_reference",
    ),
]


@pytest.mark.parametrize(("case", "body", "param"), JSON_CASES, ids=[c[0] for c in JSON_CASES])
async def test_invalid_json_creates_are_400_naming_the_field(
    http: aiohttp.ClientSession, small_proxy: RunningProxy, case: str, body: Any, param: str | None
) -> None:
    async with http.post("/v1/videos", json=body) as response:
        assert response.status == 400, case
        assert (await error_of(response))["param"] == param
    assert len(local_store(small_proxy.app)) == 0
    assert small_proxy.stats("sim-a").creates_received == 0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"', b"", b"\xff\xfe"])
async def test_malformed_json_is_400(http: aiohttp.ClientSession, raw: bytes) -> None:
    async with http.post(
        "/v1/videos", data=raw, headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 400
        assert (await error_of(response))["type"] == "invalid_request_error"


async def test_unsupported_content_type_is_400(http: aiohttp.ClientSession) -> None:
    async with http.post(
        "/v1/videos", data=b"prompt=a", headers={"Content-Type": "text/plain"}
    ) as response:
        assert response.status == 400
        assert (await error_of(response))["code"] == "unsupported_content_type"


async def test_oversized_json_body_is_413(
    http: aiohttp.ClientSession, small_proxy: RunningProxy
) -> None:
    async with http.post("/v1/videos", json={"prompt": "x" * (MAX_BODY * 2)}) as response:
        assert response.status == 413
        assert (await error_of(response))["code"] == "request_too_large"
    assert len(local_store(small_proxy.app)) == 0


async def test_oversized_upload_is_413(
    http: aiohttp.ClientSession, small_proxy: RunningProxy
) -> None:
    form = aiohttp.FormData()
    form.add_field("prompt", "a")
    form.add_field(
        "input_reference",
        b"\x89PNG" + b"\0" * (MAX_BODY * 2),
        filename="big.png",
        content_type="image/png",
    )
    async with http.post("/v1/videos", data=form) as response:
        assert response.status == 413
        await error_of(response)
    assert small_proxy.stats("sim-a").creates_received == 0


async def test_multipart_unknown_field_is_400(http: aiohttp.ClientSession) -> None:
    form = aiohttp.FormData()
    form.add_field("prompt", "a")
    form.add_field("watermark", "false")
    async with http.post("/v1/videos", data=form) as response:
        assert response.status == 400
        assert (await error_of(response))["param"] == "watermark"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing-here", 404),
        ("GET", "/v1/videos/video_unknown", 404),
        ("GET", "/v1/videos/video_unknown/content", 404),
        ("DELETE", "/v1/videos/video_unknown", 404),
        ("POST", "/v1/videos/video_unknown/remix", 404),
        ("PUT", "/v1/videos", 405),
        ("GET", "/v1/videos?limit=abc", 400),
        ("GET", "/v1/videos?limit=101", 400),
        ("GET", "/v1/videos?order=sideways", 400),
    ],
)
async def test_unknown_routes_ids_and_bad_queries(
    http: aiohttp.ClientSession, method: str, path: str, status: int
) -> None:
    async with http.request(method, path, json={"prompt": "a"}) as response:
        assert response.status == status
        await error_of(response)


async def test_missing_and_malformed_auth_are_401(small_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession(base_url=small_proxy.url) as anonymous:
        for headers in (
            {},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer sk-wrong"},
        ):
            async with anonymous.get("/v1/videos", headers=headers) as response:
                assert response.status == 401
                assert (await error_of(response))["code"] == "invalid_api_key"


async def test_content_and_remix_before_completion_are_409_without_retry(
    http: aiohttp.ClientSession,
) -> None:
    async with http.post("/v1/videos", json={"prompt": "slow one"}) as response:
        video = await response.json()
    async with http.get(f"/v1/videos/{video['id']}/content") as response:
        assert response.status == 409
        assert response.headers["x-should-retry"] == "false"
        await error_of(response)
    async with http.post(f"/v1/videos/{video['id']}/remix", json={"prompt": "b"}) as response:
        assert response.status == 409
    async with http.get(f"/v1/videos/{video['id']}/content?variant=poster") as response:
        assert response.status == 400
        assert (await error_of(response))["param"] == "variant"
    async with http.delete(f"/v1/videos/{video['id']}") as response:
        assert response.status == 400
        assert (await error_of(response))["code"] == "video_not_finished"


async def test_health_endpoints_need_no_key(small_proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession(base_url=small_proxy.url) as anonymous:
        for path in ("/healthz", "/readyz"):
            async with anonymous.get(path) as response:
                assert response.status == 200
        async with anonymous.get("/metrics") as response:
            assert response.status == 200
            assert "sora_proxy_requests_total" in await response.text()


async def test_paths_no_route_takes_are_openai_errors_after_the_key_and_counted(
    small_proxy: RunningProxy, http: aiohttp.ClientSession
) -> None:
    async with http.put("/v1/videos/video_unknown") as response:  # a route, not this method
        assert response.status == 405
        assert (await error_of(response))["code"] == "method_not_allowed"
    async with http.head("/v1/videos/video_unknown") as response:  # HEAD comes with every GET
        assert response.status == 404
    async with aiohttp.ClientSession(base_url=small_proxy.url) as anonymous:
        async with anonymous.get("/v1/nothing-here") as response:  # a wrong key learns no route
            assert response.status == 401
        async with anonymous.get("/admin/nothing-here") as response:  # admin checks its own key
            assert response.status == 404
            await error_of(response)
    sample = small_proxy.app[keys.METRICS].registry.get_sample_value(
        "sora_proxy_requests_total", {"route": "unmatched", "status": "405"}
    )
    assert sample == 1
