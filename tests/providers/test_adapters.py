"""The azure and relay adapters on the wire: auth, api-version, parameter mapping, errors, and
``find`` (a render looked up in the list) for every kind.

Wire details come from a scripted upstream over loopback (it records what it receives);
mapping round trips run against the simulator, which speaks both dialects.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from providers.azure import AzureVideosProvider
from providers.base import (
    ContentStream,
    InputReference,
    ModerationBlocked,
    ProviderError,
    ProviderUnusable,
    RateLimited,
    Rejected,
    RenderRequest,
    ServerFailed,
    Unsearchable,
    UpstreamStatus,
)
from providers.http import LIST_MAX_PAGES
from providers.openai import CLOCK_SKEW, OpenAIVideosProvider
from providers.relay import RelayProvider
from tests.clock import ManualClock
from tests.conftest import SimulatorFactory
from tests.fake_upstream import ScriptedFactory
from tests.providers.conftest import UPSTREAM_KEY

KEY = UPSTREAM_KEY
TASKS = "/v2/videos/generations"
VIDEO = {"id": "video_up1", "object": "video", "status": "queued", "progress": 0}
REQUEST = RenderRequest(model="my-sora", prompt="a kite", size="1280x720", seconds=8)


async def read_all(stream: ContentStream) -> bytes:
    try:
        return b"".join([chunk async for chunk in stream.chunks()])
    finally:
        stream.close()


# -- azure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_version", ["preview", "v1"])
async def test_azure_every_call_uses_the_api_key_header_and_the_api_version(
    scripted: ScriptedFactory, adapters: Callable[..., Any], api_version: str
) -> None:
    upstream = await scripted()
    base = "/openai/v1/videos"
    upstream.reply("POST", base, VIDEO)
    upstream.reply("GET", base, {"object": "list", "data": []})
    upstream.reply("GET", f"{base}/video_up1", {**VIDEO, "status": "completed"})
    upstream.reply("POST", f"{base}/video_up1/remix", {**VIDEO, "id": "video_up2"})
    upstream.reply("DELETE", f"{base}/video_up1", {"id": "video_up1", "deleted": True})
    upstream.reply("GET", f"{base}/video_up1/content", body=b"mp4", content_type="video/mp4")
    azure = adapters(AzureVideosProvider, upstream.url, api_version=api_version)

    assert (await azure.create(REQUEST)).upstream_id == "video_up1"
    assert (await azure.get("video_up1")).status is UpstreamStatus.COMPLETED
    assert (await azure.remix("video_up1", "at dusk")).upstream_id == "video_up2"
    await azure.delete("video_up1")
    await azure.probe()
    assert await read_all(await azure.open_content("video_up1", "video")) == b"mp4"

    assert len(upstream.seen) == 6
    for seen in upstream.seen:
        assert seen.path.startswith(base)
        assert seen.query["api-version"] == api_version
        assert seen.headers["api-key"] == KEY
        assert "Authorization" not in seen.headers
    assert upstream.seen[-1].query["variant"] == "video"


async def test_azure_sends_the_deployment_as_model_and_reads_the_video_back(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    clock = ManualClock(1_000_000.0)
    sim = await simulators(api_key=KEY, deployments=["my-sora"], clock=clock, render_seconds=10)
    azure = adapters(AzureVideosProvider, sim.base_url, api_version="preview")
    job = await azure.create(REQUEST)
    rendered = sim.jobs[job.upstream_id]
    assert (rendered.model, rendered.size, rendered.seconds) == ("my-sora", "1280x720", "8")
    clock.now += 5
    assert (await azure.get(job.upstream_id)).progress == 50
    clock.now += 5
    assert (await azure.get(job.upstream_id)).status is UpstreamStatus.COMPLETED
    content = await read_all(await azure.open_content(job.upstream_id, "video"))
    assert len(content) == sim.settings.video_bytes


async def test_azure_missing_deployment_and_bad_key_make_the_provider_unusable(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    sim = await simulators(api_key=KEY, deployments=["my-sora"])
    azure = adapters(AzureVideosProvider, sim.base_url, api_version="preview")
    with pytest.raises(ProviderUnusable) as missing:
        await azure.create(RenderRequest(model="other", prompt="x", size="720x1280", seconds=4))
    assert missing.value.status == 404 and missing.value.code == "DeploymentNotFound"
    wrong_key = AzureVideosProvider(
        name="az",
        base_url=sim.base_url,
        api_key="nope",
        timeout=5,
        api_version="preview",
    )
    try:
        with pytest.raises(ProviderUnusable):
            await wrong_key.probe()
    finally:
        await wrong_key.aclose()


# -- relay: create -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "aspect_ratio", "hd"),
    [
        ("1280x720", "16:9", False),
        ("720x1280", "9:16", False),
        ("1792x1024", "16:9", True),
        ("1024x1792", "9:16", True),
    ],
)
async def test_relay_create_maps_size_and_seconds_to_its_fields(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    size: str,
    aspect_ratio: str,
    hd: bool,
) -> None:
    upstream = await scripted()
    upstream.reply("POST", TASKS, {"task_id": "t-1"})
    relay = adapters(RelayProvider, upstream.url)
    job = await relay.create(RenderRequest(model="sora-2", prompt="p", size=size, seconds=15))
    assert (job.upstream_id, job.status) == ("t-1", UpstreamStatus.QUEUED)
    (seen,) = upstream.seen
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "prompt": "p",
        "model": "sora-2",
        "aspect_ratio": aspect_ratio,
        "hd": hd,
        "duration": "15",
    }


@pytest.mark.parametrize("size", ["1280x720", "720x1280", "1792x1024", "1024x1792"])
async def test_relay_mapping_round_trips_through_a_relay_upstream(
    simulators: SimulatorFactory, adapters: Callable[..., Any], size: str
) -> None:
    sim = await simulators(api_key=KEY)
    relay = adapters(RelayProvider, sim.base_url)
    job = await relay.create(RenderRequest(model="sora-2", prompt="p", size=size, seconds=10))
    assert (sim.jobs[job.upstream_id].size, sim.jobs[job.upstream_id].seconds) == (size, "10")


async def test_relay_images_are_the_url_or_the_upload_as_a_data_url(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("POST", TASKS, {"task_id": "t-1"})
    relay = adapters(RelayProvider, upstream.url)
    by_url = InputReference(url="https://img.example/frame.png")
    upload = InputReference(data=b"\x89PNG...", content_type="image/png")
    for reference in (by_url, upload):
        await relay.create(
            RenderRequest(
                model="m", prompt="p", size="1280x720", seconds=10, input_reference=reference
            )
        )
    assert upstream.seen[0].json()["images"] == ["https://img.example/frame.png"]
    (data_url,) = upstream.seen[1].json()["images"]
    prefix, _, encoded = data_url.partition(",")
    assert prefix == "data:image/png;base64"
    assert base64.b64decode(encoded) == b"\x89PNG..."


async def test_relay_refuses_a_square_size_and_remix_without_calling_out(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    relay = adapters(RelayProvider, upstream.url)
    with pytest.raises(Rejected) as square:
        await relay.create(RenderRequest(model="m", prompt="p", size="1024x1024", seconds=10))
    assert square.value.param == "size" and square.value.sent is False
    with pytest.raises(Rejected) as remix:
        await relay.remix("t-1", "again")
    assert remix.value.code == "remix_not_supported"
    await relay.delete("t-1")  # the dialect has no delete: a no-op
    assert upstream.seen == []


# -- relay: status ------------------------------------------------------------------------------


def task(status: str, progress: str = "0%", **extra: Any) -> dict[str, Any]:
    return {"task_id": "t-1", "platform": "sora", "status": status, "progress": progress, **extra}


OUTPUT = {"output": "https://cdn.example/t-1.mp4"}


@pytest.mark.parametrize(
    ("reply", "status", "progress", "code"),
    [
        (task("NOT_START"), UpstreamStatus.QUEUED, 0, None),
        (task("SUBMITTED"), UpstreamStatus.QUEUED, 0, None),
        (task("IN_PROGRESS", "45%"), UpstreamStatus.IN_PROGRESS, 45, None),
        (task("in_progress", "7%"), UpstreamStatus.IN_PROGRESS, 7, None),
        (task("SUCCESS", "100%", data=OUTPUT), UpstreamStatus.COMPLETED, 100, None),
        (
            task("success", "100%", data={"outputs": [OUTPUT["output"]]}),
            UpstreamStatus.COMPLETED,
            100,
            None,
        ),
        # completed means downloadable: without a link it is still in flight
        (task("SUCCESS", "100%", data=None), UpstreamStatus.IN_PROGRESS, 100, None),
        (
            task("FAILURE", "90%", fail_reason="Upstream render error"),
            UpstreamStatus.FAILED,
            90,
            None,
        ),
        (
            task("FAILURE", "90%", fail_reason="Output rejected by content moderation"),
            UpstreamStatus.FAILED,
            90,
            "moderation_blocked",
        ),
        (
            task("FAILURE", fail_reason="This content may violate our content policies."),
            UpstreamStatus.FAILED,
            0,
            "moderation_blocked",
        ),
        (task("FAILURE", fail_reason="内容违规"), UpstreamStatus.FAILED, 0, "moderation_blocked"),
    ],
)
async def test_relay_task_is_normalised(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    reply: dict[str, Any],
    status: UpstreamStatus,
    progress: int,
    code: str | None,
) -> None:
    upstream = await scripted()
    upstream.reply("GET", f"{TASKS}/t-1", reply)
    seen = await adapters(RelayProvider, upstream.url).get("t-1")
    assert (seen.status, seen.progress, seen.error_code) == (status, progress, code)
    assert seen.error_message == (reply.get("fail_reason") or None)
    assert upstream.seen[0].headers["Authorization"] == f"Bearer {KEY}"


# -- relay: errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "headers", "error"),
    [
        (401, "invalid_api_key", {}, ProviderUnusable),
        (403, "channel_disabled", {}, ProviderUnusable),
        (429, "rate_limited", {"Retry-After": "7"}, RateLimited),
        (400, "invalid_request", {}, Rejected),
        (400, "moderation_blocked", {}, ModerationBlocked),
        (502, "upstream_error", {}, ServerFailed),
    ],
)
async def test_relay_flat_errors_are_translated_at_create(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    status: int,
    code: str,
    headers: dict[str, str],
    error: type[ProviderError],
) -> None:
    upstream = await scripted()
    body = {"code": code, "message": f"the relay says {code}", "data": None}
    upstream.reply("POST", TASKS, body, status=status, headers=headers)
    with pytest.raises(error) as caught:
        await adapters(RelayProvider, upstream.url).create(REQUEST)
    assert (caught.value.status, caught.value.code) == (status, code)
    assert caught.value.message == f"the relay says {code}"
    if error is RateLimited:
        assert caught.value.retry_after == 7.0


async def test_relay_probe_takes_a_404_as_proof_and_a_401_as_unusable(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()  # answers every unscripted path 404
    relay = adapters(RelayProvider, upstream.url)
    await relay.probe()
    assert upstream.seen[0].path.startswith(f"{TASKS}/")
    assert upstream.seen[0].headers["Authorization"] == f"Bearer {KEY}"
    refused = await scripted()
    refused.answer(
        "GET",
        upstream.seen[0].path,
        lambda _: web.json_response({"code": "invalid_api_key", "message": "no"}, status=401),
    )
    with pytest.raises(ProviderUnusable):
        await adapters(RelayProvider, refused.url).probe()


# -- relay: content ------------------------------------------------------------------------------


def ranged(request: web.Request) -> web.StreamResponse:
    """A CDN that honours ``Range: bytes=0-2`` on a ten-byte file."""
    if request.headers.get("Range") == "bytes=0-2":
        return web.Response(
            status=206,
            body=b"012",
            headers={"Content-Range": "bytes 0-2/10"},
            content_type="video/mp4",
        )
    return web.Response(body=b"0123456789", content_type="video/mp4")


async def test_relay_content_on_another_host_gets_no_key_and_passes_range(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    relay_host, cdn = await scripted(), await scripted()
    cdn.answer("GET", "/cdn/t-1.mp4", ranged)
    relay_host.reply(
        "GET", f"{TASKS}/t-1", task("SUCCESS", data={"output": f"{cdn.url}/cdn/t-1.mp4"})
    )
    relay = adapters(RelayProvider, relay_host.url)

    assert await read_all(await relay.open_content("t-1", "video")) == b"0123456789"
    stream = await relay.open_content("t-1", "video", "bytes=0-2")
    assert (stream.status, stream.headers["Content-Range"]) == (206, "bytes 0-2/10")
    assert await read_all(stream) == b"012"

    assert relay_host.seen[0].headers["Authorization"] == f"Bearer {KEY}"
    assert [s.headers.get("Authorization") for s in cdn.seen] == [None, None]
    assert cdn.seen[1].headers["Range"] == "bytes=0-2"


@pytest.mark.parametrize("output", ["{root}/files/t-1.mp4", "/files/t-1.mp4"])
async def test_relay_content_on_its_own_origin_carries_the_key(
    scripted: ScriptedFactory, adapters: Callable[..., Any], output: str
) -> None:
    upstream = await scripted()
    upstream.answer("GET", "/files/t-1.mp4", ranged)
    link = output.format(root=upstream.url)
    upstream.reply("GET", f"{TASKS}/t-1", task("SUCCESS", data={"outputs": [link]}))
    relay = adapters(RelayProvider, upstream.url)
    assert await read_all(await relay.open_content("t-1", "video")) == b"0123456789"
    assert upstream.seen[-1].headers["Authorization"] == f"Bearer {KEY}"


async def test_relay_has_only_the_video_variant(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    with pytest.raises(Rejected) as caught:
        await adapters(RelayProvider, upstream.url).open_content("t-1", "thumbnail")
    assert (caught.value.param, caught.value.sent) == ("variant", False)
    assert upstream.seen == []


# -- find: an unanswered create looked up in the list ----------------------------------------


async def test_find_pages_back_to_the_send_time_and_matches_every_field_nearest_first(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    clock = ManualClock(1_800_000_000.0)
    sim = await simulators(api_key=KEY, clock=clock)
    upstream = adapters(OpenAIVideosProvider, f"{sim.base_url}/v1")
    wanted = RenderRequest(model="sora-2", prompt="a kite", size="1280x720", seconds=8)
    await upstream.create(wanted)  # the same render long before: outside the window
    clock.advance(1000)
    since = clock()
    sent = await upstream.create(wanted)
    for other in (
        replace(wanted, prompt="a kite!"),
        replace(wanted, model="sora-2-pro"),
        replace(wanted, size="720x1280"),
        replace(wanted, seconds=4),
    ):
        await upstream.create(other)
    clock.advance(3)
    again = await upstream.create(wanted)
    clock.advance(5 + CLOCK_SKEW + 1)  # past the timeout (5) and the skew: not that send's
    await upstream.create(wanted)
    for n in range(120):  # the matches are on the second page
        await upstream.create(replace(wanted, prompt=f"filler {n}"))
    lists = sim.stats.lists

    found = await upstream.find(wanted, since)
    assert [job.upstream_id for job in found] == [sent.upstream_id, again.upstream_id]
    assert found[0].status is UpstreamStatus.COMPLETED  # read from the list entry
    assert sim.stats.lists - lists == 2  # the second page reached back past the window


async def test_azure_find_follows_the_cursor_with_its_key_and_api_version(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    since = 1_800_000_000.0
    video = {**VIDEO, "model": "my-sora", "size": "1280x720", "seconds": "8", "prompt": "a kite"}
    newer = {**video, "id": "video_new", "prompt": "x", "created_at": since + 9}
    older = {**video, "id": "video_old", "created_at": since - CLOCK_SKEW - 1}  # ends the walk
    pages: dict[str | None, dict[str, Any]] = {
        None: {"data": [newer], "has_more": True, "last_id": "video_new"},
        "video_new": {
            "data": [{**video, "created_at": since + 1}, older],
            "has_more": True,
            "last_id": "video_old",
        },
    }

    def page(request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", **pages[request.query.get("after")]})

    upstream = await scripted()
    upstream.answer("GET", "/openai/v1/videos", page)
    azure = adapters(AzureVideosProvider, upstream.url, api_version="preview")
    assert [job.upstream_id for job in await azure.find(REQUEST, since)] == ["video_up1"]
    first = {"order": "desc", "limit": "100", "api-version": "preview"}
    assert [seen.query for seen in upstream.seen] == [first, {**first, "after": "video_new"}]
    assert all(seen.headers["api-key"] == KEY for seen in upstream.seen)


async def test_find_cannot_tell_without_prompts_a_list_or_an_end_of_the_list(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    since = 1_800_000_000.0
    unnamed = {**VIDEO, "model": "my-sora", "size": "1280x720", "seconds": "8", "prompt": None}
    upstream = await scripted()
    openai_up = adapters(OpenAIVideosProvider, upstream.url)
    listing = {"object": "list", "has_more": False, "data": [{**unnamed, "created_at": since}]}
    upstream.reply("GET", "/videos", listing)
    with pytest.raises(Unsearchable, match="prompts"):
        await openai_up.find(REQUEST, since)

    upstream.reply("GET", "/videos", {"error": {"message": "no such route"}}, status=404)
    with pytest.raises(Unsearchable):
        await openai_up.find(REQUEST, since)

    endless = {**listing, "has_more": True, "last_id": "video_up1"}
    endless["data"] = [{**unnamed, "prompt": "other", "created_at": since}]
    upstream.reply("GET", "/videos", endless)
    upstream.seen.clear()
    with pytest.raises(Unsearchable, match="pages"):
        await openai_up.find(REQUEST, since)
    assert len(upstream.seen) == LIST_MAX_PAGES

    upstream.reply("GET", "/videos", {"error": {"message": "busy"}}, status=503)
    with pytest.raises(ServerFailed):  # a failed read, to be tried again, not "cannot tell"
        await openai_up.find(REQUEST, since)


async def test_relay_find_cannot_tell_and_calls_nothing(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    with pytest.raises(Unsearchable) as caught:
        await adapters(RelayProvider, upstream.url).find(REQUEST, 1_800_000_000.0)
    assert caught.value.sent is False
    assert upstream.seen == []


# -- list_page: one page of the list, for the poller's sweeps ------------------------------------


async def test_list_page_reads_videos_newest_first_with_the_cursor_and_the_oldest_time(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    listed = [
        {**VIDEO, "id": "video_b", "status": "in_progress", "progress": 40, "created_at": 20},
        {"id": "video_broken"},  # not a Video object: left out
        {**VIDEO, "id": "video_a", "status": "completed", "created_at": 10},
    ]
    upstream.reply("GET", "/videos", {"data": listed, "has_more": True, "last_id": "video_a"})
    openai_up = adapters(OpenAIVideosProvider, upstream.url)
    page = await openai_up.list_page(None)
    assert [(job.upstream_id, job.status, job.progress) for job in page.jobs] == [
        ("video_b", UpstreamStatus.IN_PROGRESS, 40),
        ("video_a", UpstreamStatus.COMPLETED, 100),
    ]
    assert (page.oldest, page.next_after) == (10.0, "video_a")
    upstream.reply("GET", "/videos", {"data": listed[:1], "has_more": False, "last_id": "video_b"})
    last = await openai_up.list_page("video_a")
    assert (last.oldest, last.next_after) == (20.0, None)  # the list ends here
    first = {"order": "desc", "limit": "100"}
    assert [seen.query for seen in upstream.seen] == [first, {**first, "after": "video_a"}]


async def test_list_page_without_a_list_is_unsearchable_and_a_failure_is_a_failed_read(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    azure = adapters(AzureVideosProvider, upstream.url, api_version="preview")
    assert azure.lists and not adapters(RelayProvider, upstream.url).lists
    with pytest.raises(Unsearchable):  # nothing answers /openai/v1/videos: a 404
        await azure.list_page(None)
    upstream.reply("GET", "/openai/v1/videos", {"error": {"message": "busy"}}, status=503)
    with pytest.raises(ServerFailed):
        await azure.list_page(None)
    assert all(seen.query["api-version"] == "preview" for seen in upstream.seen)
    assert all(seen.headers["api-key"] == KEY for seen in upstream.seen)
    seen = len(upstream.seen)
    with pytest.raises(Unsearchable):
        await adapters(RelayProvider, upstream.url).list_page(None)
    assert len(upstream.seen) == seen  # the relay never calls out for it
