"""What each task kind reads off its wire beyond the shared contract (``tests/contract``):
Gemini's filtered operations and key errors, xAI's two readings, fal's field mapping and its
rebuilt URLs, costs and tokens, estimated progress, and the address rules of result links.

Wire details come from a scripted upstream over loopback that records what it receives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from providers.ark import ArkSeedanceProvider
from providers.base import (
    BadUpstreamReply,
    InputReference,
    ModerationBlocked,
    ModerationStage,
    ProviderUnusable,
    RateLimited,
    Rejected,
    RenderRequest,
    UpstreamStatus,
)
from providers.fal import FalQueueProvider
from providers.fieldmap import FieldMap
from providers.gemini import GeminiVeoProvider
from providers.openrouter import OpenRouterProvider
from providers.tasks import ESTIMATE_CAP, ProgressEstimate, TaskProvider
from providers.xai import XaiVideoProvider
from tests.clock import ManualClock
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream
from tests.providers.conftest import UPSTREAM_KEY as KEY

OPERATION = "models/veo-3.1/operations/op1"
REQUEST = RenderRequest(model="veo-3.1", prompt="a kite", size="1280x720", seconds=8)


def operation(**fields: Any) -> dict[str, Any]:
    return {"name": OPERATION, "done": True, **fields}


def generated(**fields: Any) -> dict[str, Any]:
    return {"response": {"generateVideoResponse": fields}}


# -- gemini ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        ({"name": OPERATION, "done": False}, UpstreamStatus.IN_PROGRESS, None),
        (
            operation(**generated(generatedSamples=[{"video": {"uri": "/v1beta/files/f"}}])),
            UpstreamStatus.COMPLETED,
            None,
        ),
        (
            operation(**generated(raiMediaFilteredCount=1, raiMediaFilteredReasons=["minors"])),
            UpstreamStatus.FAILED,
            "moderation_blocked",
        ),
        (operation(**generated()), UpstreamStatus.FAILED, "empty_result"),
        (
            operation(error={"code": 13, "message": "Internal error.", "status": "INTERNAL"}),
            UpstreamStatus.FAILED,
            "INTERNAL",
        ),
        (
            operation(error={"code": 3, "message": "Blocked by safety filters.", "status": "X"}),
            UpstreamStatus.FAILED,
            "moderation_blocked",
        ),
    ],
    ids=["running", "video", "all-filtered", "empty", "error", "error-naming-safety"],
)
async def test_gemini_reads_an_operation(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    reply: dict[str, Any],
    status: UpstreamStatus,
    code: str | None,
) -> None:
    """Done with every sample filtered and no video is moderation, never success."""
    upstream = await scripted()
    upstream.reply("GET", f"/v1beta/{OPERATION}", reply)
    job = await adapters(GeminiVeoProvider, f"{upstream.url}/v1beta").get(OPERATION)
    assert (job.status, job.error_code) == (status, code)
    assert upstream.seen[0].headers["x-goog-api-key"] == KEY
    assert "Authorization" not in upstream.seen[0].headers


async def test_gemini_sends_veo_parameters_and_refuses_a_url_reference(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("POST", "/v1beta/models/veo-3.1:predictLongRunning", {"name": OPERATION})
    gemini = adapters(GeminiVeoProvider, f"{upstream.url}/v1beta")
    image = InputReference(data=b"png", content_type="image/png")
    request = RenderRequest("veo-3.1", "a kite", "720x1280", 4, image)
    assert (await gemini.create(request)).upstream_id == OPERATION
    assert upstream.seen[0].json() == {
        "instances": [
            {"prompt": "a kite", "image": {"bytesBase64Encoded": "cG5n", "mimeType": "image/png"}}
        ],
        "parameters": {"aspectRatio": "9:16", "resolution": "720p", "durationSeconds": 4},
    }
    linked = RenderRequest(
        "veo-3.1", "a kite", "720x1280", 4, InputReference(url="https://x/a.png")
    )
    with pytest.raises(Rejected) as caught:
        await gemini.create(linked)
    assert caught.value.param == "input_reference"


async def test_gemini_a_refused_key_is_an_unusable_provider(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    refusal = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"reason": "API_KEY_INVALID"}],
        }
    }
    upstream.reply("GET", "/v1beta/models", refusal, status=400)
    with pytest.raises(ProviderUnusable):
        await adapters(GeminiVeoProvider, f"{upstream.url}/v1beta").probe()


async def test_gemini_reads_only_operation_names_it_could_have_made(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    with pytest.raises(BadUpstreamReply):
        await adapters(GeminiVeoProvider, f"{upstream.url}/v1beta").get("../../elsewhere")
    assert upstream.seen == []


# -- openrouter, xai, ark: costs, tokens, both readings ----------------------------------------


async def test_openrouter_records_cost_and_reads_a_failure_string(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    done = {"id": "gen-vid-1", "polling_url": "/x", "status": "completed", "usage": {"cost": 0.8}}
    upstream.reply("GET", "/api/v1/videos/gen-vid-1", done)
    failed = {"id": "gen-vid-2", "polling_url": "/x", "status": "failed", "error": "GPU fell over"}
    upstream.reply("GET", "/api/v1/videos/gen-vid-2", failed)
    expired = {"id": "gen-vid-3", "polling_url": "/x", "status": "expired"}
    upstream.reply("GET", "/api/v1/videos/gen-vid-3", expired)
    router = adapters(OpenRouterProvider, f"{upstream.url}/api/v1")
    assert (await router.get("gen-vid-1")).cost_usd == 0.8
    second = await router.get("gen-vid-2")
    assert (second.status, second.error_code, second.error_message) == (
        UpstreamStatus.FAILED,
        None,
        "GPU fell over",
    )
    third = await router.get("gen-vid-3")
    assert third.status is UpstreamStatus.FAILED and third.error_message


@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        ({"status": "pending"}, UpstreamStatus.IN_PROGRESS, None),
        ({"video": {"url": "https://vidgen.x.ai/a.mp4"}}, UpstreamStatus.COMPLETED, None),
        (
            {"status": "done", "video": {"url": "", "respect_moderation": False}},
            UpstreamStatus.FAILED,
            "moderation_blocked",
        ),
        ({"status": "failed", "error": {"code": "x", "message": "no"}}, UpstreamStatus.FAILED, "x"),
        ({"status": "expired"}, UpstreamStatus.FAILED, None),
    ],
    ids=["pending", "video-without-status", "withheld", "error-object", "expired"],
)
async def test_xai_reads_both_readings_of_a_result(
    scripted: ScriptedFactory,
    adapters: Callable[..., Any],
    reply: dict[str, Any],
    status: UpstreamStatus,
    code: str | None,
) -> None:
    upstream = await scripted()
    upstream.reply("GET", "/v1/videos/r1", {**reply, "usage": {"cost_in_usd_ticks": 5 * 10**9}})
    job = await adapters(XaiVideoProvider, f"{upstream.url}/v1").get("r1")
    assert (job.status, job.error_code) == (status, code)
    assert job.cost_usd == 0.5


async def test_ark_records_tokens_and_names_moderation_by_code(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    tasks = "/api/v3/contents/generations/tasks"
    done = {"id": "cgt-1", "status": "succeeded", "content": {"video_url": "https://a/b.mp4"}}
    upstream.reply("GET", f"{tasks}/cgt-1", {**done, "usage": {"total_tokens": 108900}})
    refused = {"code": "OutputVideoSensitiveContentDetected", "message": "withheld"}
    upstream.reply("GET", f"{tasks}/cgt-2", {"id": "cgt-2", "status": "failed", "error": refused})
    submit = {"code": "InputImageSensitiveContentDetected", "message": "no", "param": "image_url"}
    upstream.reply("POST", tasks, {"error": submit}, status=400)
    ark = adapters(ArkSeedanceProvider, f"{upstream.url}/api/v3")
    assert (await ark.get("cgt-1")).usage_tokens == 108900
    assert (await ark.get("cgt-2")).error_code == "moderation_blocked"
    with pytest.raises(ModerationBlocked) as caught:
        await ark.create(REQUEST)
    assert caught.value.stage is ModerationStage.INPUT
    assert upstream.seen[-1].json()["content"] == [{"type": "text", "text": "a kite"}]


# -- fal --------------------------------------------------------------------------------------

FIELDS = FieldMap.parse(
    {
        "prompt": "text",
        "seconds": "duration",
        "seconds_format": "{}s",
        "size": "video_size",
        "image_url": "start_image",
        "fixed": {"generate_audio": False},
        "output": "videos.0",
    },
    "fields",
)[0]


def test_a_field_map_builds_the_models_inputs_and_finds_its_video() -> None:
    request = RenderRequest(
        "owner/app/sub", "a kite", "1280x720", 8, InputReference(url="https://x/a.png")
    )
    assert FIELDS.inputs(request) == {
        "generate_audio": False,
        "text": "a kite",
        "duration": "8s",
        "video_size": "1280x720",
        "start_image": "https://x/a.png",
    }
    assert FieldMap(output="video.url").video_url({"video": {"url": "https://v"}}) == "https://v"
    assert FieldMap(output="video.url").video_url({"video": None}) is None


def test_a_field_map_reports_every_problem_by_path() -> None:
    raw = {"seconds": "d", "aspect_ratio": "d", "seconds_format": "s", "colour": "x", "fixed": 3}
    _, problems = FieldMap.parse(raw, "p.fields")
    assert sorted(problems) == [
        "p.fields.colour: unknown field",
        "p.fields.fixed: must be a mapping of input names to values",
        "p.fields.seconds_format: must hold {} once, where the seconds go",
        "p.fields: two parts map to the same input field",
    ]


async def test_fal_rebuilds_every_url_on_its_own_host(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    """The submit reply's URLs point elsewhere; the key still goes only to base_url."""
    upstream, elsewhere = await scripted(), await scripted()
    upstream.reply(
        "POST",
        "/owner/app/sub",
        {"request_id": "r1", "status_url": f"{elsewhere.url}/steal", "response_url": elsewhere.url},
    )
    upstream.reply("GET", "/owner/app/requests/r1/status", {"status": "IN_PROGRESS"})
    fal = adapters(FalQueueProvider, upstream.url, field_maps={"owner/app/sub": FIELDS})
    request = RenderRequest("owner/app/sub", "a kite", "1280x720", 8)
    job = await fal.create(request)
    assert job.upstream_id == "owner/app/sub/requests/r1"
    assert (await fal.get(job.upstream_id)).status is UpstreamStatus.IN_PROGRESS
    assert elsewhere.seen == []
    assert all(seen.headers["Authorization"] == f"Key {KEY}" for seen in upstream.seen)


async def test_fal_422_content_policy_is_moderation_at_submit_and_in_a_result(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    violation = {
        "loc": ["body", "start_image"],
        "msg": "flagged",
        "type": "content_policy_violation",
    }
    upstream.reply("POST", "/owner/app", {"detail": [violation]}, status=422)
    upstream.reply("GET", "/owner/app/requests/r2/status", {"status": "COMPLETED"})
    upstream.reply("GET", "/owner/app/requests/r2", {"detail": [violation]}, status=422)
    fal = adapters(FalQueueProvider, upstream.url, field_maps={"owner/app": FIELDS})
    with pytest.raises(ModerationBlocked) as caught:
        await fal.create(RenderRequest("owner/app", "a kite", "1280x720", 8))
    assert (caught.value.stage, caught.value.message) == (ModerationStage.INPUT, "flagged")
    done = await fal.get("owner/app/requests/r2")
    assert (done.status, done.error_code) == (UpstreamStatus.FAILED, "moderation_blocked")


async def test_fal_refuses_a_model_without_a_mapping(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    fal = adapters(FalQueueProvider, upstream.url, field_maps={})
    with pytest.raises(ProviderUnusable):
        await fal.create(RenderRequest("owner/app", "a kite", "1280x720", 8))
    assert upstream.seen == []


# -- estimated progress -----------------------------------------------------------------------


def test_estimated_progress_rises_with_time_caps_and_ends_at_100() -> None:
    clock = ManualClock(0.0)
    estimate = ProgressEstimate(100.0, clock)
    rendering = UpstreamStatus.IN_PROGRESS
    assert estimate.at("t", UpstreamStatus.QUEUED) == 0
    assert estimate.at("t", rendering) == 0
    clock.advance(50)
    assert estimate.at("t", rendering) == ESTIMATE_CAP // 2
    clock.advance(500)
    assert estimate.at("t", rendering) == ESTIMATE_CAP
    assert estimate.at("t", UpstreamStatus.COMPLETED) == 100
    assert estimate.at("t", rendering) == 0  # forgotten once finished: a new render of that id
    assert estimate.at("u", UpstreamStatus.FAILED) is None


# -- result links: the key only to our origin, redirects only to the kind's hosts -------------


def redirect_to(target: str) -> Callable[[web.Request], web.StreamResponse]:
    def answer(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(target)

    return answer


async def test_a_link_redirect_keeps_the_key_on_our_origin(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    """Same host, other port: fetched (loopback simulators live there) but without the key."""
    upstream, cdn = await scripted(), await scripted()
    upstream.answer("GET", "/v1beta/files/f:download", redirect_to(f"{cdn.url}/v.mp4"))
    cdn.answer("GET", "/v.mp4", lambda _: web.Response(body=b"mp4 bytes", content_type="video/mp4"))
    gemini = adapters(GeminiVeoProvider, f"{upstream.url}/v1beta")
    stream = await gemini.open_link("/v1beta/files/f:download?alt=media", "video")
    try:
        assert b"".join([c async for c in stream.chunks()]) == b"mp4 bytes"
    finally:
        stream.close()
    assert upstream.seen[0].headers["x-goog-api-key"] == KEY
    assert "x-goog-api-key" not in cdn.seen[0].headers


async def test_a_link_or_redirect_off_the_kinds_hosts_is_refused(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.answer("GET", "/hop", redirect_to("http://localhost:9/v.mp4"))
    xai = adapters(XaiVideoProvider, f"{upstream.url}/v1")
    for link in ("http://localhost:9/v.mp4", "/hop", "file:///etc/passwd"):
        with pytest.raises(BadUpstreamReply):
            await xai.open_link(link, "video")
    with pytest.raises(Rejected):
        await xai.open_link("/v.mp4", "thumbnail")


def test_the_kinds_own_domains_join_the_content_hosts(adapters: Callable[..., Any]) -> None:
    """Gemini's downloads may go to Google's hosts, and nowhere else unless configured."""
    gemini = adapters(
        GeminiVeoProvider,
        "https://generativelanguage.googleapis.com/v1beta",
        content_hosts=("cdn.example",),
    )
    allowed = {
        host: gemini.addresses.host_allowed(host)
        for host in (
            "generativelanguage.googleapis.com",
            "video-downloads.googleusercontent.com",
            "cdn.example",
            "googleusercontent.com.evil.example",
            "evilgoogleapis.com",
        )
    }
    assert list(allowed.values()) == [True, True, True, False, False]


async def test_a_429_carries_retry_after_for_every_task_kind(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream: ScriptedUpstream = await scripted()
    upstream.reply(
        "GET",
        "/v1/videos/r1",
        {"code": "x", "error": "slow"},
        status=429,
        headers={"Retry-After": "7"},
    )
    with pytest.raises(RateLimited) as caught:
        await adapters(XaiVideoProvider, f"{upstream.url}/v1").get("r1")
    assert caught.value.retry_after == 7


# -- broken replies and what config already keeps out ------------------------------------------

# kind -> (adapter, base path, create path, job id, the job's read path)
BROKEN: dict[str, tuple[type[TaskProvider], str, str, str, str]] = {
    "openrouter": (OpenRouterProvider, "/api/v1", "/videos", "j", "/videos/j"),
    "gemini": (
        GeminiVeoProvider,
        "/v1beta",
        "/models/m:predictLongRunning",
        OPERATION,
        f"/{OPERATION}",
    ),
    "xai": (XaiVideoProvider, "/v1", "/videos/generations", "r", "/videos/r"),
    "ark": (
        ArkSeedanceProvider,
        "/api/v3",
        "/contents/generations/tasks",
        "t",
        "/contents/generations/tasks/t",
    ),
    "fal": (FalQueueProvider, "", "/o/m", "o/m/requests/r", "/o/m/requests/r/status"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
async def test_a_reply_without_the_job_is_a_broken_upstream(
    scripted: ScriptedFactory, adapters: Callable[..., Any], kind: str
) -> None:
    cls, base, create, job_id, read = BROKEN[kind]
    upstream = await scripted()
    for method, path in (("POST", create), ("GET", read), ("GET", "/o/m/requests/r")):
        upstream.reply(method, base + path, {"unexpected": True})
    extra = {"field_maps": {"o/m": FIELDS}} if kind == "fal" else {}
    adapter = adapters(cls, upstream.url + base, **extra)
    with pytest.raises(BadUpstreamReply):
        await adapter.create(RenderRequest("o/m" if kind == "fal" else "m", "p", "1280x720", 8))
    with pytest.raises(BadUpstreamReply):
        await adapter.get(job_id)
    if kind != "openrouter":  # OpenRouter's content is a fixed route, not a link in the job
        with pytest.raises(BadUpstreamReply):
            await adapter.open_content(job_id, "video")


@pytest.mark.parametrize("kind", ["openrouter", "gemini", "xai", "ark"])
async def test_a_size_the_kind_cannot_name_is_refused_before_sending(
    scripted: ScriptedFactory, adapters: Callable[..., Any], kind: str
) -> None:
    """Config keeps these out of selection; the adapter still never guesses a size."""
    upstream = await scripted()
    adapter = adapters(BROKEN[kind][0], upstream.url)
    with pytest.raises(Rejected) as caught:
        await adapter.create(RenderRequest("m", "p", "1792x1024", 8))
    assert caught.value.param == "size"
    assert upstream.seen == []


async def test_ark_cancels_and_deletes_by_delete_and_fal_cancels_by_put(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("DELETE", "/api/v3/contents/generations/tasks/t", {})
    upstream.reply("PUT", "/o/m/requests/r/cancel", {"status": "ALREADY_COMPLETED"}, status=400)
    upstream.reply("PUT", "/o/m/requests/gone/cancel", {"detail": "no"}, status=404)
    ark = adapters(ArkSeedanceProvider, f"{upstream.url}/api/v3")
    await ark.cancel("t")
    await ark.delete("t")
    fal = adapters(FalQueueProvider, upstream.url, field_maps={"o/m": FIELDS})
    assert ark.cancels and fal.cancels
    await fal.cancel("o/m/requests/r")  # finished: nothing to cancel
    with pytest.raises(Rejected):
        await fal.cancel("o/m/requests/gone")
    with pytest.raises(BadUpstreamReply):
        await fal.cancel("../../x")
    await fal.delete("o/m/requests/r")  # the queue API has no delete: nothing is sent
    assert [(s.method, s.path) for s in upstream.seen] == [
        ("DELETE", "/api/v3/contents/generations/tasks/t"),
        ("DELETE", "/api/v3/contents/generations/tasks/t"),
        ("PUT", "/o/m/requests/r/cancel"),
        ("PUT", "/o/m/requests/gone/cancel"),
    ]


async def test_ark_reads_a_succeeded_task_without_a_link_as_rendering(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    tasks = "/api/v3/contents/generations/tasks"
    upstream.reply("GET", f"{tasks}/a", {"id": "a", "status": "succeeded"})
    upstream.reply("GET", f"{tasks}/b", {"id": "b", "status": "expired"})
    ark = adapters(ArkSeedanceProvider, f"{upstream.url}/api/v3")
    assert (await ark.get("a")).status is UpstreamStatus.IN_PROGRESS
    expired = await ark.get("b")
    assert (expired.status, expired.error_message) == (
        UpstreamStatus.FAILED,
        "The task ended expired at Ark.",
    )


async def test_fal_reads_a_non_json_422_as_a_plain_refusal(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("POST", "/o/m", status=422, body=b"<html>bad</html>")
    fal = adapters(FalQueueProvider, upstream.url, field_maps={"o/m": FIELDS})
    with pytest.raises(Rejected) as caught:
        await fal.create(RenderRequest("o/m", "p", "1280x720", 8))
    assert not isinstance(caught.value, ModerationBlocked)
