"""The simulated upstream's relay task dialect and its CDN link, over loopback HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.sim_rig import T0, Rig, StartRig
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture


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
