"""Edits and extensions over raw HTTP: by id (pinned to the source's provider) and by upload
(any capable provider, with failover), and the documented limits as 400s."""

from __future__ import annotations

from typing import Any, Literal

import aiohttp
import pytest

from providers.mp4 import header
from providers.simulator.server import Simulator
from router.records.job import JobState
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    sim_provider,
    stored_job,
    upstream_provider,
)
from tests.sim_rig import assert_openai_error


def mp4(size: tuple[int, int] = (1280, 720), seconds: int = 4) -> bytes:
    """A small MP4 whose boxes say ``seconds`` and ``size``."""
    return header(*size, seconds, 1024) + bytes(1024 - len(header(*size, seconds, 1024)))


async def send(
    proxy: RunningProxy,
    path: str,
    *,
    key: str = ALICE,
    expect: int = 200,
    json: dict[str, Any] | None = None,
    data: aiohttp.FormData | None = None,
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{proxy.url}{path}",
            json=json,
            data=data,
            headers={"Authorization": f"Bearer {key}"},
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == expect, body
        return body


async def completed(proxy: RunningProxy, seconds: Literal["4", "8", "12"] = "4") -> str:
    video = await proxy.client().videos.create(prompt="a fox", seconds=seconds, size="1280x720")
    assert (await finished_job(proxy, video.id)).state is JobState.COMPLETED
    return video.id


def upload_form(**fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("video", mp4(), filename="v.mp4", content_type="video/mp4")
    return form


async def test_edit_by_id_goes_to_the_provider_holding_the_source(proxy: RunningProxy) -> None:
    source = await completed(proxy)
    edited = await send(
        proxy, "/v1/videos/edits", json={"prompt": "now red", "video": {"id": source}}
    )
    assert (edited["size"], edited["seconds"], edited["model"]) == ("1280x720", "4", "sora-2")
    job = stored_job(proxy, edited["id"])
    assert job.current.provider == stored_job(proxy, source).current.provider
    assert job.source_video_id == source
    assert (await finished_job(proxy, edited["id"])).state is JobState.COMPLETED


async def test_extension_by_form_id_answers_the_stitched_total_and_bills_the_segment(
    proxy: RunningProxy,
) -> None:
    source = await completed(proxy, seconds="8")
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in (("prompt", "go on"), ("seconds", "4"), ("video[id]", source)):
        form.add_field(name, value)
    extended = await send(proxy, "/v1/videos/extensions", data=form)
    assert extended["seconds"] == "12"
    job = await finished_job(proxy, extended["id"])
    assert (job.state, job.segment_seconds, job.extensions) == (JobState.COMPLETED, 4, 1)
    assert job.cost_usd == pytest.approx(job.price_per_second * 4)


async def test_extension_limits_are_clear_400s(proxy: RunningProxy) -> None:
    source = await completed(proxy, seconds="12")
    body = {"prompt": "more", "video": {"id": source}}
    bad = await send(proxy, "/v1/videos/extensions", json={**body, "seconds": "3"}, expect=400)
    assert_openai_error(bad, code="invalid_value", param="seconds")
    missing = await send(proxy, "/v1/videos/extensions", json=body, expect=400)
    assert_openai_error(missing, code="missing_required_parameter", param="seconds")
    chain = source
    for _ in range(6):
        step = await send(
            proxy, "/v1/videos/extensions", json={**body, "video": {"id": chain}, "seconds": 4}
        )
        chain = step["id"]
        await finished_job(proxy, chain)
    assert stored_job(proxy, chain).seconds == 36
    seventh = await send(
        proxy,
        "/v1/videos/extensions",
        json={**body, "video": {"id": chain}, "seconds": "4"},
        expect=400,
    )
    assert_openai_error(seventh, code="too_many_extensions", param="video")


async def test_an_extension_past_120_seconds_is_refused(proxy: RunningProxy) -> None:
    upload = aiohttp.FormData(default_to_multipart=True)
    upload.add_field("prompt", "longer")
    upload.add_field("seconds", "15")
    upload.add_field("video", mp4(seconds=110), filename="long.mp4", content_type="video/mp4")
    refused = await send(proxy, "/v1/videos/extensions", data=upload, expect=400)
    assert_openai_error(refused, code="video_too_long", param="seconds")


async def test_sources_are_checked(proxy: RunningProxy) -> None:
    source = await completed(proxy)
    other = await send(
        proxy,
        "/v1/videos/edits",
        key=BOB,
        json={"prompt": "x", "video": {"id": source}},
        expect=404,
    )
    assert_openai_error(other, code="not_found", param="video")
    for video in ({"url": "x"}, "video_1", None):
        body = {"prompt": "x"} if video is None else {"prompt": "x", "video": video}
        refused = await send(proxy, "/v1/videos/edits", json=body, expect=400)
        assert refused["error"]["param"] == "video"
    garbage = aiohttp.FormData(default_to_multipart=True)
    garbage.add_field("prompt", "x")
    garbage.add_field("video", b"not an mp4", filename="v.mp4", content_type="video/mp4")
    unreadable = await send(proxy, "/v1/videos/edits", data=garbage, expect=400)
    assert_openai_error(unreadable, code="invalid_video", param="video")
    odd = aiohttp.FormData(default_to_multipart=True)
    odd.add_field("prompt", "x")
    odd.add_field("video", mp4(size=(640, 480)), filename="v.mp4", content_type="video/mp4")
    assert_openai_error(
        await send(proxy, "/v1/videos/edits", data=odd, expect=400),
        code="invalid_video",
        param="video",
    )
    wrong_model = {"prompt": "x", "video": {"id": source}, "model": "sora-2-pro"}
    refused = await send(proxy, "/v1/videos/edits", json=wrong_model, expect=400)
    assert_openai_error(refused, code="invalid_value", param="model")


async def test_an_uploaded_source_fails_over_at_submit(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("broken", price=0.01, submit_error_rate=1.0),
            sim_provider("good", price=0.2),
        ],
        routing={"strategy": "cheapest"},
    )
    edited = await send(proxy, "/v1/videos/edits", data=upload_form(prompt="now blue"))
    job = await finished_job(proxy, edited["id"])
    assert job.state is JobState.COMPLETED
    assert [a.provider for a in job.attempts] == ["good"]
    assert proxy.stats("broken").edits == 1 and proxy.stats("good").edits == 1


async def test_an_uploaded_source_fails_over_after_acceptance(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("flaky", price=0.01, fail_words=["blue"]),
            sim_provider("good", price=0.2),
        ],
        routing={"strategy": "cheapest"},
    )
    extended = await send(
        proxy, "/v1/videos/extensions", data=upload_form(prompt="now blue", seconds="8")
    )
    job = await finished_job(proxy, extended["id"])
    assert job.state is JobState.COMPLETED
    assert [a.provider for a in job.attempts] == ["flaky", "good"]
    upstream = proxy.simulator("good").jobs[job.current.upstream_id]
    assert upstream.seconds == "12"  # the kept upload was sent again, and stitched again


async def test_a_kind_that_cannot_edit_is_no_candidate_and_refuses_held_sources(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    relay_sim: Simulator = await simulators()
    proxy = await proxy_factory([upstream_provider("relay", "relay", relay_sim)])
    refused = await send(proxy, "/v1/videos/edits", data=upload_form(prompt="x"), expect=400)
    assert_openai_error(refused, code="edit_not_supported", param="video")
    source = await completed(proxy)
    held = await send(
        proxy,
        "/v1/videos/extensions",
        json={"prompt": "x", "seconds": "4", "video": {"id": source}},
        expect=400,
    )
    assert_openai_error(held, code="extend_not_supported", param="video")
    remix = await send(proxy, f"/v1/videos/{source}/remix", json={"prompt": "x"}, expect=400)
    assert_openai_error(remix, code="remix_not_supported", param="video_id")


async def test_an_unfinished_source_is_not_ready(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("slow", render_seconds=30)])
    video = await proxy.client().videos.create(prompt="slow")
    early = await send(
        proxy, "/v1/videos/edits", json={"prompt": "x", "video": {"id": video.id}}, expect=409
    )
    assert_openai_error(early, code="video_not_ready", param="video")


async def test_a_follow_up_of_a_held_source_is_never_moved(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [sim_provider("a", price=0.01, fail_words=["broken"]), sim_provider("b", price=0.2)],
        routing={"strategy": "cheapest"},
    )
    source = await completed(proxy)
    edited = await send(
        proxy, "/v1/videos/edits", json={"prompt": "broken light", "video": {"id": source}}
    )
    job = await finished_job(proxy, edited["id"])
    assert (job.state, job.error_code, len(job.attempts)) == (JobState.FAILED, "internal_error", 1)
    assert proxy.stats("b").edits == 0
