"""The simulated upstream, over real loopback HTTP, with a clock the tests move by hand."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers import simulator
from providers.sim_media import Variant, make_asset
from providers.simulation import SimulationSettings
from providers.simulator import Fault, Simulator, SimulatorStats, serve_forever

KEY = "sk-sim-test"
BEARER = {"Authorization": f"Bearer {KEY}"}
AZURE = {"api-key": KEY}
PREVIEW = {"api-version": "preview"}
T0 = 1_800_000_000.0
PNG = b"\x89PNG\r\n\x1a\n"
TIMING = {"queue_seconds": 5.0, "render_seconds": 20.0, "video_bytes": 4096}


class ManualClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Rig:
    sim: Simulator
    clock: ManualClock
    http: aiohttp.ClientSession

    def url(self, path: str) -> str:
        return self.sim.base_url + path

    async def call(
        self, method: str, path: str, *, expect: int = 200, **kwargs: Any
    ) -> tuple[Any, aiohttp.ClientResponse]:
        """Send a request, check the status, return the JSON body (or bytes) and the response."""
        kwargs.setdefault("headers", BEARER)
        async with self.http.request(method, self.url(path), **kwargs) as response:
            raw = await response.read()
            assert response.status == expect, raw[:300]
            is_json = response.content_type == "application/json"
            return (await response.json() if is_json else raw), response

    async def create(self, prompt: str = "a red fox in snow", **fields: Any) -> dict[str, Any]:
        body, _ = await self.call("POST", "/v1/videos", json={"prompt": prompt, **fields})
        assert isinstance(body, dict)
        return body

    async def video(self, video_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/v1/videos/{video_id}")
        assert isinstance(body, dict)
        return body

    async def relay_task(self, task_id: str) -> dict[str, Any]:
        body, _ = await self.call("GET", f"/v2/videos/generations/{task_id}")
        assert isinstance(body, dict)
        return body


StartRig = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def start_rig() -> AsyncIterator[StartRig]:
    """Start simulators on demand (settings as keywords); all are stopped after the test."""
    simulators: list[Simulator] = []
    async with aiohttp.ClientSession() as http:

        async def start(
            *, api_key: str = KEY, deployments: Collection[str] | None = None, **settings: Any
        ) -> Rig:
            clock = ManualClock()
            sim = Simulator(
                SimulationSettings(**{**TIMING, **settings}),
                api_key=api_key,
                deployments=deployments,
                clock=clock,
            )
            simulators.append(sim)
            await sim.start()
            return Rig(sim, clock, http)

        yield start
    for sim in simulators:
        await sim.stop()


@pytest.fixture
async def rig(start_rig: StartRig) -> Rig:
    return await start_rig()


def sdk_form(**fields: str) -> aiohttp.FormData:
    """A multipart body shaped like the OpenAI SDK's create (text fields, optional image)."""
    form = aiohttp.FormData(default_to_multipart=True)  # the SDK never sends urlencoded
    for name, value in fields.items():
        form.add_field(name, value)
    return form


def with_image(form: aiohttp.FormData) -> aiohttp.FormData:
    form.add_field("input_reference", PNG, filename="a.png", content_type="image/png")
    return form


def assert_openai_error(body: Any, *, code: str | None, param: str | None = None) -> None:
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert (error["code"], error["param"]) == (code, param)


# -- OpenAI dialect: the lifecycle -----------------------------------------------------------------


async def test_multipart_create_moves_through_queue_and_render_to_a_downloadable_mp4(
    rig: Rig,
) -> None:
    form = sdk_form(prompt="a red fox", model="sora-2-pro", seconds="8", size="1280x720")
    video, _ = await rig.call("POST", "/v1/videos", data=form)
    assert re.fullmatch(r"video_[0-9a-f]{48}", video["id"])
    assert video == {
        "id": video["id"],
        "object": "video",
        "model": "sora-2-pro",
        "status": "queued",
        "progress": 0,
        "created_at": int(T0),
        "completed_at": None,
        "expires_at": None,
        "prompt": "a red fox",
        "size": "1280x720",
        "seconds": "8",
        "remixed_from_video_id": None,
        "error": None,
    }
    rig.clock.advance(5)  # out of the queue
    assert (await rig.video(video["id"]))["status"] == "in_progress"
    rig.clock.advance(10)  # half of render_seconds
    assert (await rig.video(video["id"]))["progress"] == 50
    rig.clock.advance(10)
    done = await rig.video(video["id"])
    assert (done["status"], done["progress"]) == ("completed", 100)
    assert done["completed_at"] == int(T0) + 25
    assert done["expires_at"] == int(T0) + 25 + 3600

    body, response = await rig.call("GET", f"/v1/videos/{video['id']}/content")
    assert response.content_type == "video/mp4"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert len(body) == 4096
    assert body.startswith(b"\x00\x00\x00\x18ftypmp42")
    again, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content?variant=video")
    assert again == body  # deterministic per job id


async def test_json_create_takes_int_seconds_and_an_image_url_object(rig: Rig) -> None:
    reference = {"image_url": "data:image/png;base64,iVBORw0KGgo="}
    video = await rig.create(seconds=12, input_reference=reference)
    assert (video["seconds"], video["model"], video["size"]) == ("12", "sora-2", "720x1280")
    job = rig.sim.jobs[video["id"]]
    assert (job.input_reference, job.input_bytes) == (reference["image_url"], None)


async def test_multipart_takes_an_image_file_but_not_a_url_string(rig: Rig) -> None:
    form = with_image(sdk_form(prompt="a fox"))
    video, _ = await rig.call("POST", "/v1/videos", data=form)
    assert rig.sim.jobs[video["id"]].input_bytes == PNG
    as_text = sdk_form(prompt="a fox", input_reference="https://example.com/a.png")
    body, _ = await rig.call("POST", "/v1/videos", data=as_text, expect=400)
    assert_openai_error(body, code="invalid_type", param="input_reference")


@pytest.mark.parametrize(
    ("fields", "code", "param"),
    [
        ({"model": "sora-2"}, "missing_required_parameter", "prompt"),
        ({"prompt": "   "}, "invalid_value", "prompt"),
        ({"prompt": "x" * 32001}, "invalid_value", "prompt"),
        ({"prompt": "fox", "seconds": "7"}, "invalid_value", "seconds"),
        ({"prompt": "fox", "seconds": 4.0}, "invalid_value", "seconds"),
        ({"prompt": "fox", "size": "640x480"}, "invalid_value", "size"),
        (
            {"prompt": "fox", "input_reference": "https://x/a.png"},
            "invalid_type",
            "input_reference",
        ),
        ({"prompt": "fox", "model": ""}, "invalid_type", "model"),
    ],
)
async def test_invalid_create_is_a_400_envelope_and_makes_no_job(
    rig: Rig, fields: dict[str, Any], code: str, param: str
) -> None:
    body, _ = await rig.call("POST", "/v1/videos", json=fields, expect=400)
    assert_openai_error(body, code=code, param=param)
    assert body["error"]["type"] == "invalid_request_error"
    assert rig.sim.jobs == {}


async def test_unparseable_json_is_a_400_envelope(rig: Rig) -> None:
    headers = {**BEARER, "Content-Type": "application/json"}
    body, _ = await rig.call("POST", "/v1/videos", data=b"{nope", headers=headers, expect=400)
    assert_openai_error(body, code=None)


async def test_unknown_video_is_404(rig: Rig) -> None:
    body, _ = await rig.call("GET", "/v1/videos/video_" + "0" * 48, expect=404)
    assert_openai_error(body, code=None, param="video_id")


# -- content -------------------------------------------------------------------------------------


async def test_content_is_refused_until_completed_and_for_failed_jobs(start_rig: StartRig) -> None:
    rig = await start_rig(fail_words=("glitch",))
    ok, failing = await rig.create(), await rig.create("a glitch")
    body, _ = await rig.call("GET", f"/v1/videos/{ok['id']}/content", expect=409)
    assert_openai_error(body, code="video_not_ready")
    rig.clock.advance(25)
    await rig.call("GET", f"/v1/videos/{ok['id']}/content")
    body, _ = await rig.call("GET", f"/v1/videos/{failing['id']}/content", expect=400)
    assert_openai_error(body, code=None, param="video_id")


async def test_content_expires_after_asset_ttl(start_rig: StartRig) -> None:
    rig = await start_rig(asset_ttl=100.0)
    video = await rig.create()
    rig.clock.advance(25 + 99)
    await rig.call("GET", f"/v1/videos/{video['id']}/content")
    rig.clock.advance(1)
    body, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content", expect=410)
    assert_openai_error(body, code="expired")


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


async def test_unknown_variant_is_400(rig: Rig) -> None:
    video = await rig.create()
    rig.clock.advance(25)
    body, _ = await rig.call("GET", f"/v1/videos/{video['id']}/content?variant=gif", expect=400)
    assert_openai_error(body, code="invalid_value", param="variant")


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
    assert int.from_bytes(body[24:28], "big") == 1_000_000 - 24  # the mdat box holds the rest
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


# -- list, delete, remix -----------------------------------------------------------------------


async def test_list_pages_newest_first_by_default_and_oldest_first_on_request(rig: Rig) -> None:
    ids = []
    for n in range(5):
        ids.append((await rig.create(f"clip {n}"))["id"])
        rig.clock.advance(1)
    pages: list[list[str]] = []
    after = ""
    while True:
        query = {"limit": "2", **({"after": after} if after else {})}
        page, _ = await rig.call("GET", "/v1/videos", params=query)
        assert page["object"] == "list"
        pages.append([video["id"] for video in page["data"]])
        assert (page["first_id"], page["last_id"]) == (pages[-1][0], pages[-1][-1])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    ascending, _ = await rig.call("GET", "/v1/videos", params={"order": "asc", "limit": "100"})
    assert [video["id"] for video in ascending["data"]] == ids
    assert ascending["has_more"] is False


async def test_list_of_nothing_and_bad_list_parameters(rig: Rig) -> None:
    empty, _ = await rig.call("GET", "/v1/videos")
    assert empty == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    for query, param in [
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"order": "newest"}, "order"),
        ({"after": "video_unknown"}, "after"),
    ]:
        body, _ = await rig.call("GET", "/v1/videos", params=query, expect=400)
        assert body["error"]["param"] == param


async def test_delete_only_finished_jobs(start_rig: StartRig) -> None:
    rig = await start_rig(fail_words=("glitch",))
    video, failing = await rig.create(), await rig.create("glitch")
    body, _ = await rig.call("DELETE", f"/v1/videos/{video['id']}", expect=400)
    assert_openai_error(body, code=None, param="video_id")
    rig.clock.advance(25)
    for job in (video, failing):
        deleted, _ = await rig.call("DELETE", f"/v1/videos/{job['id']}")
        assert deleted == {"id": job["id"], "object": "video.deleted", "deleted": True}
        await rig.call("GET", f"/v1/videos/{job['id']}", expect=404)
    await rig.call("DELETE", f"/v1/videos/{video['id']}", expect=404)
    assert rig.sim.jobs == {}


async def test_remix_needs_a_completed_source_and_makes_a_linked_job(rig: Rig) -> None:
    source = await rig.create(seconds="8", size="1280x720")
    path = f"/v1/videos/{source['id']}/remix"
    body, _ = await rig.call("POST", path, json={"prompt": "now at night"}, expect=400)
    assert_openai_error(body, code=None, param="video_id")
    rig.clock.advance(25)
    remix, _ = await rig.call("POST", path, json={"prompt": "now at night"})
    assert remix["id"] != source["id"]
    assert remix["remixed_from_video_id"] == source["id"]
    assert (remix["status"], remix["prompt"]) == ("queued", "now at night")
    assert (remix["seconds"], remix["size"], remix["model"]) == ("8", "1280x720", "sora-2")
    body, _ = await rig.call("POST", path, json={}, expect=400)
    assert_openai_error(body, code="missing_required_parameter", param="prompt")
    await rig.call("POST", "/v1/videos/video_nope/remix", json={"prompt": "x"}, expect=404)


# -- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"api-key": KEY}],
    ids=["none", "wrong-key", "no-scheme", "azure-header"],
)
async def test_openai_and_relay_paths_need_the_bearer_key(
    rig: Rig, headers: dict[str, str]
) -> None:
    body, _ = await rig.call("GET", "/v1/videos", headers=headers, expect=401)
    assert_openai_error(body, code="invalid_api_key")
    body, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x"}, headers=headers, expect=401
    )
    assert body["code"] == "invalid_api_key"
    assert rig.sim.stats == SimulatorStats()  # refused before any handler


async def test_without_an_api_key_every_caller_is_let_in(start_rig: StartRig) -> None:
    rig = await start_rig(api_key="")
    await rig.call("POST", "/v1/videos", json={"prompt": "fox"}, headers={})
    await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers={})


# -- Azure dialect -------------------------------------------------------------------------------


async def test_azure_lifecycle_with_api_key_and_deployment(start_rig: StartRig) -> None:
    rig = await start_rig(deployments={"sora2-test"})
    form = with_image(sdk_form(prompt="a fox", model="sora2-test", seconds="4", size="720x1280"))
    video, _ = await rig.call("POST", "/openai/v1/videos", params=PREVIEW, data=form, headers=AZURE)
    assert (video["model"], video["status"]) == ("sora2-test", "queued")
    rig.clock.advance(25)
    path = f"/openai/v1/videos/{video['id']}"
    done, _ = await rig.call("GET", path, params={"api-version": "v1"}, headers=AZURE)
    assert done["status"] == "completed"
    body, response = await rig.call("GET", path + "/content", params=PREVIEW, headers=AZURE)
    assert (response.content_type, len(body)) == ("video/mp4", 4096)
    listed, _ = await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers=AZURE)
    assert [v["id"] for v in listed["data"]] == [video["id"]]
    remix, _ = await rig.call(
        "POST", path + "/remix", params=PREVIEW, json={"prompt": "at dusk"}, headers=AZURE
    )
    assert remix["model"] == "sora2-test"
    await rig.call("DELETE", path, params=PREVIEW, headers=AZURE)


@pytest.mark.parametrize(
    ("headers", "query", "status", "code"),
    [
        (BEARER, PREVIEW, 401, "401"),
        ({"api-key": "wrong"}, PREVIEW, 401, "401"),
        (AZURE, {}, 404, "404"),
        (AZURE, {"api-version": "2024-10-21"}, 400, "BadRequest"),
    ],
    ids=["bearer-instead-of-api-key", "wrong-key", "no-api-version", "old-api-version"],
)
async def test_azure_gate(
    rig: Rig, headers: dict[str, str], query: dict[str, str], status: int, code: str
) -> None:
    body, _ = await rig.call(
        "GET", "/openai/v1/videos", params=query, headers=headers, expect=status
    )
    assert body["error"]["code"] == code
    assert rig.sim.stats.lists == 0


async def test_azure_unknown_deployment_is_a_404_user_error(start_rig: StartRig) -> None:
    rig = await start_rig(deployments={"sora2-test"})
    body, _ = await rig.call(
        "POST",
        "/openai/v1/videos",
        params=PREVIEW,
        json={"prompt": "fox", "model": "sora-2"},
        headers=AZURE,
        expect=404,
    )
    assert body["error"]["type"] == "video_generation_user_error"
    assert body["error"]["param"] == "model"
    body, _ = await rig.call(
        "POST",
        "/openai/v1/videos",
        params=PREVIEW,
        json={"prompt": "fox"},
        headers=AZURE,
        expect=400,
    )
    assert_openai_error(body, code="missing_required_parameter", param="model")
    assert rig.sim.stats.creates_accepted == 0


async def test_one_job_table_behind_every_dialect(rig: Rig) -> None:
    video = await rig.create()
    seen, _ = await rig.call(
        "GET", f"/openai/v1/videos/{video['id']}", params=PREVIEW, headers=AZURE
    )
    assert seen["id"] == video["id"]
    task, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x", "model": "sora-2"}
    )
    assert (await rig.video(task["task_id"]))["size"] == "1280x720"


# -- relay dialect -------------------------------------------------------------------------------


async def test_relay_task_lifecycle_ends_with_a_public_mp4_link(rig: Rig) -> None:
    body = {"prompt": "a fox", "model": "sora-2", "aspect_ratio": "9:16", "duration": "10"}
    created, _ = await rig.call("POST", "/v2/videos/generations", json=body)
    assert set(created) == {"task_id"}
    task_id = created["task_id"]
    assert uuid.UUID(task_id).version == 4
    task = await rig.relay_task(task_id)
    assert task == {
        "task_id": task_id,
        "platform": "sora",
        "action": "generate",
        "status": "NOT_START",
        "progress": "0%",
        "fail_reason": "",
        "submit_time": int(T0),
        "start_time": None,
        "finish_time": None,
        "data": None,
    }
    rig.clock.advance(5 + 6)
    task = await rig.relay_task(task_id)
    async with rig.http.get(rig.url(f"/files/{task_id}.mp4")) as response:
        assert response.status == 404  # nothing to serve yet
    assert (task["status"], task["progress"], task["start_time"]) == (
        "IN_PROGRESS",
        "30%",
        int(T0) + 5,
    )
    rig.clock.advance(14)
    task = await rig.relay_task(task_id)
    assert (task["status"], task["progress"], task["finish_time"]) == (
        "SUCCESS",
        "100%",
        int(T0) + 25,
    )
    output = task["data"]["output"]
    assert output == rig.url(f"/files/{task_id}.mp4")
    async with rig.http.get(output) as response:  # a CDN link: no credentials
        assert (response.status, response.content_type) == (200, "video/mp4")
        assert len(await response.read()) == 4096
    async with rig.http.head(output) as response:
        assert (response.status, response.headers["Content-Length"]) == (200, "4096")
    async with rig.http.get(rig.url("/files/nope.mp4")) as response:
        assert response.status == 404


@pytest.mark.parametrize(
    ("aspect_ratio", "hd", "size"),
    [
        ("16:9", False, "1280x720"),
        ("9:16", False, "720x1280"),
        ("16:9", True, "1792x1024"),
        ("9:16", True, "1024x1792"),
    ],
)
async def test_relay_size_from_aspect_ratio_and_hd(
    rig: Rig, aspect_ratio: str, hd: bool, size: str
) -> None:
    body = {
        "prompt": "x",
        "model": "sora-2-pro",
        "aspect_ratio": aspect_ratio,
        "hd": hd,
        "duration": 15,
    }
    created, _ = await rig.call("POST", "/v2/videos/generations", json=body)
    job = rig.sim.jobs[created["task_id"]]
    assert (job.size, job.seconds) == (size, "15")


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"model": None}, "model"),
        ({"hd": "yes"}, "hd"),
        ({"images": "https://x/a.png"}, "images"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"duration": "7"}, "duration"),
    ],
)
async def test_relay_rejects_bad_fields_in_its_own_error_shape(
    rig: Rig, extra: dict[str, Any], param: str
) -> None:
    body = {"prompt": "x", "model": "sora-2", **extra}
    error, _ = await rig.call("POST", "/v2/videos/generations", json=body, expect=400)
    assert set(error) == {"code", "message", "data"}
    assert param in error["message"]


async def test_relay_unknown_task_is_404_task_not_exist(rig: Rig) -> None:
    error, _ = await rig.call("GET", f"/v2/videos/generations/{uuid.uuid4()}", expect=404)
    assert error["code"] == "task_not_exist"


async def test_relay_output_moderation_fails_with_a_content_policy_reason(
    start_rig: StartRig,
) -> None:
    rig = await start_rig(moderation_output_words=("crowd",))
    body = {"prompt": "A Crowd at night", "model": "sora-2", "images": ["https://x/a.png"]}
    created, _ = await rig.call("POST", "/v2/videos/generations", json=body)
    assert rig.sim.jobs[created["task_id"]].input_reference == "https://x/a.png"
    rig.clock.advance(5 + 18)  # 90% of the render
    task = await rig.relay_task(created["task_id"])
    assert (task["status"], task["progress"], task["data"]) == ("FAILURE", "90%", None)
    assert "content moderation" in task["fail_reason"]
    assert "moderation_blocked" in task["fail_reason"]
    assert task["finish_time"] == int(T0) + 23


async def test_relay_prompt_moderation_is_a_400_with_relay_body(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_prompt_words=("gore",))
    body = {"prompt": "so much GORE", "model": "sora-2"}
    error, _ = await rig.call("POST", "/v2/videos/generations", json=body, expect=400)
    assert error == {
        "code": "moderation_blocked",
        "message": "Your request was blocked by our moderation system.",
        "data": None,
    }


# -- faults --------------------------------------------------------------------------------------


async def test_submit_error_is_a_500_and_makes_no_job(start_rig: StartRig) -> None:
    rig = await start_rig(submit_error_rate=1.0)
    body, _ = await rig.call("POST", "/v1/videos", json={"prompt": "fox"}, expect=500)
    assert body["error"]["type"] == "server_error"
    assert rig.sim.jobs == {}
    assert (rig.sim.stats.creates_received, rig.sim.stats.creates_accepted) == (1, 0)


async def test_rate_limit_is_a_429_with_retry_after_rounded_up(start_rig: StartRig) -> None:
    rig = await start_rig(rate_limit_rate=1.0, retry_after=2.5)
    for path in ("/v1/videos", "/v2/videos/generations"):
        body, response = await rig.call(
            "POST", path, json={"prompt": "fox", "model": "sora-2"}, expect=429
        )
        assert response.headers["Retry-After"] == "3"
        code = body["error"]["code"] if path == "/v1/videos" else body["code"]
        assert code == "rate_limit_exceeded"
    assert rig.sim.jobs == {}


async def test_creates_per_minute_is_a_sliding_window_on_the_clock(start_rig: StartRig) -> None:
    rig = await start_rig(creates_per_minute=2)
    await rig.create()
    rig.clock.advance(20)
    await rig.create()
    rig.clock.advance(10)
    body, response = await rig.call("POST", "/v1/videos", json={"prompt": "x"}, expect=429)
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["Retry-After"] == "30"  # the first create leaves the window at +60
    rig.clock.advance(30)
    await rig.create()  # the first slot freed; the refused create took none
    _, response = await rig.call("POST", "/v1/videos", json={"prompt": "x"}, expect=429)
    assert response.headers["Retry-After"] == "20"
    assert (rig.sim.stats.creates_received, rig.sim.stats.creates_accepted) == (5, 3)


async def test_prompt_moderation_by_word_is_case_insensitive(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_prompt_words=("Violence",))
    body, _ = await rig.call("POST", "/v1/videos", json={"prompt": "VIOLENCE!"}, expect=400)
    assert_openai_error(body, code="moderation_blocked")
    assert body["error"]["message"] == "Your request was blocked by our moderation system."
    await rig.create("a calm lake")


async def test_prompt_moderation_by_rate(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_prompt_rate=1.0)
    body, _ = await rig.call("POST", "/v1/videos", json={"prompt": "fox"}, expect=400)
    assert_openai_error(body, code="moderation_blocked")


async def test_input_moderation_applies_only_with_an_image(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_input_rate=1.0)
    await rig.create()
    body, _ = await rig.call(
        "POST", "/v1/videos", data=with_image(sdk_form(prompt="fox")), expect=400
    )
    assert_openai_error(body, code="moderation_blocked", param="input_reference")
    assert "real people" in body["error"]["message"]


@pytest.mark.parametrize(
    ("setting", "code", "message"),
    [
        ("fail_words", "internal_error", "Video generation failed."),
        (
            "moderation_output_words",
            "moderation_blocked",
            "The generated video was blocked by our moderation system.",
        ),
    ],
)
async def test_failing_jobs_fail_at_90_percent(
    start_rig: StartRig, setting: str, code: str, message: str
) -> None:
    rig = await start_rig(**{setting: ("doomed",)})
    video = await rig.create("a doomed ship")
    rig.clock.advance(5 + 17.875)  # 89.4% (binary fractions keep the clock exact)
    almost = await rig.video(video["id"])
    assert (almost["status"], almost["progress"]) == ("in_progress", 89)
    rig.clock.advance(0.125)
    failed = await rig.video(video["id"])
    assert (failed["status"], failed["progress"]) == ("failed", 90)
    assert failed["error"] == {"code": code, "message": message}
    assert (failed["completed_at"], failed["expires_at"]) == (int(T0) + 23, None)
    rig.clock.advance(1000)
    assert await rig.video(video["id"]) == failed


async def test_stalled_job_stops_at_40_percent_forever(start_rig: StartRig) -> None:
    rig = await start_rig(stall_words=("stuck",))
    video = await rig.create("stuck in traffic")
    rig.clock.advance(1e6)
    stalled = await rig.video(video["id"])
    assert (stalled["status"], stalled["progress"], stalled["error"]) == ("in_progress", 40, None)


async def test_rates_are_drawn_once_per_create_from_the_seed(start_rig: StartRig) -> None:
    seeded = {"fail_rate": 0.3, "stall_rate": 0.3, "moderation_output_rate": 0.3, "seed": 7}
    reader, writer = await start_rig(**seeded), await start_rig(**seeded)
    for n in range(20):
        video = await reader.create(f"clip {n}")
        await writer.create(f"clip {n}")
        for _ in range(3):  # reads on one simulator only: they must not consume draws
            reader.clock.advance(10)
            await reader.video(video["id"])
    plans = [[job.fault for job in rig.sim.jobs.values()] for rig in (reader, writer)]
    assert plans[0] == plans[1]
    assert set(plans[0]) == set(Fault)  # 20 draws at these rates hit every outcome


async def test_latency_delays_every_answer(start_rig: StartRig) -> None:
    rig = await start_rig(latency=0.05)
    started = time.perf_counter()
    await rig.call("GET", "/v1/videos")
    assert time.perf_counter() - started >= 0.05


# -- stats and lifecycle -------------------------------------------------------------------------


async def test_stats_count_every_request_that_reached_a_handler(start_rig: StartRig) -> None:
    rig = await start_rig(moderation_prompt_words=("blocked",))
    video = await rig.create()
    await rig.call("POST", "/v1/videos", json={"prompt": "blocked"}, expect=400)
    created, _ = await rig.call(
        "POST", "/v2/videos/generations", json={"prompt": "x", "model": "m"}
    )
    await rig.video(video["id"])
    await rig.relay_task(created["task_id"])
    await rig.call("GET", "/openai/v1/videos", params=PREVIEW, headers=AZURE)
    await rig.call("GET", f"/v1/videos/{video['id']}/content", expect=409)
    rig.clock.advance(25)
    await rig.call("GET", f"/v1/videos/{video['id']}/content")
    await rig.call("POST", f"/v1/videos/{video['id']}/remix", json={"prompt": "again"})
    await rig.call("DELETE", f"/v1/videos/{video['id']}")
    assert rig.sim.stats == SimulatorStats(
        creates_received=3,
        creates_accepted=2,
        gets=2,
        lists=1,
        content_downloads=2,
        remixes=1,
        deletes=1,
    )
    assert len(rig.sim.jobs) == 2  # the relay job and the remix


def test_public_surface() -> None:
    assert set(simulator.__all__) == {
        "Fault",
        "JobError",
        "RenderState",
        "SimulatedJob",
        "Simulator",
        "SimulatorStats",
        "VideoStatus",
        "serve_forever",
    }


async def test_start_twice_and_base_url_before_start_are_errors() -> None:
    sim = Simulator(SimulationSettings())
    with pytest.raises(RuntimeError):
        _ = sim.base_url
    url = await sim.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url) and sim.base_url == url
        with pytest.raises(RuntimeError):
            await sim.start()
    finally:
        await sim.stop()


async def test_serve_forever_logs_its_url_and_stops_when_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="providers.simulator")
    task = asyncio.create_task(
        serve_forever(SimulationSettings(), host="127.0.0.1", port=0, api_key=KEY)
    )
    messages: list[str] = []
    for _ in range(200):  # start-up takes a few loop turns; poll for it rather than guess
        messages = [r.getMessage() for r in caplog.records if r.name == "providers.simulator"]
        if messages:
            break
        await asyncio.sleep(0.01)
    url = re.search(r"http://\S+", messages[0])
    assert url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(url.group() + "/v1/videos", headers=BEARER) as response,
    ):
        assert response.status == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
