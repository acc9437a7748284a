"""The poll's resource (``router.api.openai.VideoPath``): what aiohttp's own resource for
``/v1/videos/{video_id}`` would match, by a prefix test."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from yarl import URL

from router.api.openai import VIDEO_PATH, VideoPath
from router.jsonio import JSON_TYPE
from tests.conftest import ALICE, FAST_RENDER, ProxyFactory, RunningProxy, sim_provider

# paths as aiohttp hands them to a resource (``path_safe``): anything but ``%2F`` and ``%25``
# decoded, so ``/``, ``{``, ``}``, ``%`` and any other character can be in them
SEGMENT = st.text(alphabet=st.sampled_from("ab_0/{}%2F5é \n"), max_size=12)
PATHS = st.one_of(
    st.builds("/v1/videos/{}".format, SEGMENT),
    st.builds("/v1/videos{}".format, SEGMENT),
    st.builds("/v1/{}".format, SEGMENT),
)


@given(PATHS)
@example("/v1/videos/")
@example("/v1/videos/video_1")
@example("/v1/videos/a%2Fb%25c")
@example("/v1/videos/a%2")
@example("/v1/videos/video_1/content")
@example("/v1/videosx")
def test_the_poll_resource_matches_what_aiohttps_own_would(path: str) -> None:
    ours = VideoPath()._match(path)
    assert ours == web.DynamicResource(VIDEO_PATH)._match(path)


def test_the_poll_resource_builds_urls_as_aiohttps_would() -> None:
    for video_id in ("video_1", "a/b", "50%", "é"):
        built = VideoPath().url_for(video_id=video_id)
        assert built == web.DynamicResource(VIDEO_PATH).url_for(video_id=video_id)


@pytest.fixture
async def small_proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a", **FAST_RENDER)])


async def test_every_route_on_the_poll_path_is_on_the_poll_resource(
    small_proxy: RunningProxy,
) -> None:
    """aiohttp adds the routes after the first on the same path to the resource we made; if a
    release stopped doing that, the poll would go to a resource of aiohttp's making."""
    found = [r for r in small_proxy.app.router.resources() if r.canonical == VIDEO_PATH]
    assert len(found) == 1
    assert isinstance(found[0], VideoPath)
    assert {route.method for route in found[0]} == {"GET", "HEAD", "DELETE"}


async def test_polls_by_the_sdk_and_by_encoded_paths_reach_the_job(
    small_proxy: RunningProxy,
) -> None:
    client = small_proxy.client()
    video = await client.videos.create(prompt="a cat")
    polled = await client.videos.retrieve(video.id)
    assert polled.id == video.id
    auth = {"Authorization": f"Bearer {ALICE}"}
    async with aiohttp.ClientSession(small_proxy.url, headers=auth) as http:
        # a character of the id written as an escape is the same id
        encoded = f"/v1/videos/{video.id[:-1]}%{ord(video.id[-1]):02X}"
        async with http.get(URL(encoded, encoded=True)) as response:
            assert response.status == 200
            assert (await response.json())["id"] == video.id
            assert response.headers["Content-Type"] == JSON_TYPE
            assert response.headers["openai-poll-after-ms"] == "50"  # the tests' config
            assert response.headers["X-Request-Id"].startswith("req_")
        async with http.head(f"/v1/videos/{video.id}") as response:
            assert response.status == 200
            assert await response.read() == b""
        async with http.put(f"/v1/videos/{video.id}") as response:
            assert response.status == 405
            assert (await response.json())["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/videos/a%2Fb", "No video found with id 'a/b'."),  # an encoded slash is in the id
        ("/v1/videos/50%25", "No video found with id '50%'."),
        # a real slash makes another path, no route's; braces are not in aiohttp's pattern
        ("/v1/videos/a/b", "Unknown route GET /v1/videos/a/b."),
        ("/v1/videos/%7Bx%7D", "Unknown route GET /v1/videos/{x}."),
        ("/v1/videos/", "Unknown route GET /v1/videos/."),
    ],
)
async def test_ids_no_job_has_are_the_envelopes_404(
    small_proxy: RunningProxy, path: str, message: str
) -> None:
    auth = {"Authorization": f"Bearer {ALICE}"}
    async with (
        aiohttp.ClientSession(small_proxy.url, headers=auth) as http,
        http.get(URL(path, encoded=True)) as response,
    ):
        assert response.status == 404
        assert response.headers["X-Request-Id"].startswith("req_")
        error = (await response.json())["error"]
        assert error["message"] == message
