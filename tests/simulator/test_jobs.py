"""The simulated upstream's jobs: refused creates, faults drawn at create, and how they end."""

from __future__ import annotations

import time

import aiohttp
import pytest

from providers.simulator import jobs as sim_jobs
from providers.simulator.jobs import Fault
from providers.simulator.settings import SimulationSettings
from tests.clock import ManualClock
from tests.conftest import wait_for
from tests.sim_rig import T0, StartRig, assert_openai_error, sdk_form, with_image
from tests.sim_rig import start_rig as start_rig  # a fixture

GIVE_UP = aiohttp.ClientTimeout(total=0.05)  # a caller's timeout, shorter than the delays below


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


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/videos", {"prompt": "a slow fox"}),
        ("/v2/videos/generations", {"prompt": "a slow fox", "model": "sora-2"}),
    ],
)
async def test_a_slow_reply_makes_the_job_at_once_and_answers_late(
    start_rig: StartRig, path: str, body: dict[str, str]
) -> None:
    rig = await start_rig(slow_reply_words=("SLOW",), slow_reply_seconds=0.2)
    with pytest.raises(TimeoutError):
        await rig.call("POST", path, json=body, timeout=GIVE_UP)
    # made before the answer was due: it renders
    assert [job.prompt for job in rig.sim.jobs.values()] == ["a slow fox"]
    assert rig.sim.stats.creates_accepted == rig.sim.stats.slow_replies == 1
    started = time.perf_counter()
    await rig.call("POST", path, json=body)
    assert time.perf_counter() - started >= 0.2
    await rig.call("POST", path, json={**body, "prompt": "a quick fox"}, timeout=GIVE_UP)
    assert rig.sim.stats.slow_replies == 2


async def test_a_create_whose_caller_left_during_latency_makes_no_job(start_rig: StartRig) -> None:
    rig = await start_rig(latency=0.2)
    with pytest.raises(TimeoutError):
        await rig.call("POST", "/v1/videos", json={"prompt": "fox"}, timeout=GIVE_UP)

    async def dropped() -> bool:
        return rig.sim.stats.abandoned == 1

    await wait_for(dropped)
    assert rig.sim.jobs == {} and rig.sim.stats.creates_received == 0


def test_public_surface() -> None:
    assert set(sim_jobs.__all__) == {
        "CreateParams",
        "Fault",
        "JobError",
        "JobTable",
        "RenderState",
        "SimulatedCharacter",
        "SimulatedJob",
        "SimulatorStats",
        "VideoStatus",
    }


def test_list_pages_follow_creation_order_by_cursor_and_skip_deleted_jobs() -> None:
    table = sim_jobs.JobTable(SimulationSettings(), ManualClock(T0))
    params = sim_jobs.CreateParams("a fox", "sora-2", "720x1280", "4")
    ids = [table.create(params, job_id=f"video_{n:03d}").id for n in range(250)]

    def walk(descending: bool) -> list[list[str]]:
        pages, after = [], None
        while True:
            page, more = table.page(after=after, limit=100, descending=descending)
            pages.append([job.id for job in page])
            if not more:
                return pages
            after = page[-1].id

    assert walk(True) == [ids[:149:-1], ids[149:49:-1], ids[49::-1]]
    assert walk(False) == [ids[:100], ids[100:200], ids[200:]]
    del table.jobs["video_249"], table.jobs["video_100"]  # a delete, or a test reaching in
    kept = [job_id for job_id in reversed(ids) if job_id not in ("video_249", "video_100")]
    assert walk(True) == [kept[:100], kept[100:200], kept[200:]]
    with pytest.raises(KeyError):
        table.page(after="video_100", limit=100, descending=True)
    for job_id in ids[:200]:  # mostly gaps now: the order is compacted, the answers unchanged
        table.jobs.pop(job_id, None)
    assert walk(True) == [ids[:199:-1][1:]]
    assert table.page(after="video_210", limit=5, descending=False)[0][0].id == "video_211"
