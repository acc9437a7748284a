"""The simulated upstream's edits, extensions and characters, straight over HTTP."""

from __future__ import annotations

import aiohttp

from providers.mp4 import header
from providers.simulator.follow_ups import MAX_EXTENSIONS
from tests.sim_rig import Rig, assert_openai_error
from tests.sim_rig import rig as rig  # a fixture
from tests.sim_rig import start_rig as start_rig  # a fixture

CLIP = header(1280, 720, 110, 1024).ljust(1024, b"\0")


def upload(clip: bytes = CLIP, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("video", clip, filename="v.mp4", content_type="video/mp4")
    return form


async def done(rig: Rig, **fields: str) -> str:
    video = await rig.create(**fields)
    rig.clock.now += 30
    video_id: str = video["id"]
    return video_id


async def test_extensions_stitch_and_stop_at_the_documented_limits(rig: Rig) -> None:
    chain = await done(rig, seconds="4")
    for step in range(MAX_EXTENSIONS):
        body, _ = await rig.call(
            "POST",
            "/v1/videos/extensions",
            json={"prompt": "on", "seconds": 4, "video": {"id": chain}},
        )
        assert body["seconds"] == str(4 * (step + 2))
        rig.clock.now += 30
        chain = body["id"]
    refused, _ = await rig.call(
        "POST",
        "/v1/videos/extensions",
        json={"prompt": "on", "seconds": 4, "video": {"id": chain}},
        expect=400,
    )
    assert_openai_error(refused, code="invalid_value", param="video")
    too_long, _ = await rig.call(
        "POST", "/v1/videos/extensions", data=upload(prompt="on", seconds="20"), expect=400
    )
    assert_openai_error(too_long, code="invalid_value", param="seconds")
    bad_segment, _ = await rig.call(
        "POST",
        "/v1/videos/extensions",
        json={"prompt": "on", "seconds": "3", "video": {"id": chain}},
        expect=400,
    )
    assert_openai_error(bad_segment, code="invalid_value", param="seconds")


async def test_edit_sources_are_checked(rig: Rig) -> None:
    running = (await rig.create())["id"]
    early, _ = await rig.call(
        "POST", "/v1/videos/edits", json={"prompt": "x", "video": {"id": running}}, expect=400
    )
    assert_openai_error(early, code="invalid_value", param="video")
    gone, _ = await rig.call(
        "POST", "/v1/videos/edits", json={"prompt": "x", "video": {"id": "video_no"}}, expect=404
    )
    assert gone["error"]["param"] == "video"
    missing, _ = await rig.call("POST", "/v1/videos/edits", json={"prompt": "x"}, expect=400)
    assert_openai_error(missing, code="missing_required_parameter", param="video")
    wrong, _ = await rig.call(
        "POST", "/v1/videos/edits", json={"prompt": "x", "video": "v"}, expect=400
    )
    assert_openai_error(wrong, code="invalid_type", param="video")
    unreadable, _ = await rig.call(
        "POST", "/v1/videos/edits", data=upload(b"nope", prompt="x"), expect=400
    )
    assert_openai_error(unreadable, code="invalid_value", param="video")
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("prompt", "x")
    form.add_field("video[id]", await done(rig))
    edited, _ = await rig.call("POST", "/v1/videos/edits", data=form)
    assert edited["status"] == "queued"


async def test_characters_are_kept_and_read_back(rig: Rig) -> None:
    made, _ = await rig.call("POST", "/v1/videos/characters", data=upload(name="Mossy"))
    assert made["id"].startswith("char_") and made["name"] == "Mossy"
    found, _ = await rig.call("GET", f"/v1/videos/characters/{made['id']}")
    assert found == made
    missing, _ = await rig.call("GET", "/v1/videos/characters/char_no", expect=404)
    assert missing["error"]["param"] == "character_id"
    nameless, _ = await rig.call("POST", "/v1/videos/characters", data=upload(name=""), expect=400)
    assert_openai_error(nameless, code="invalid_value", param="name")
    clipless, _ = await rig.call(
        "POST", "/v1/videos/characters", json={"name": "x", "video": "v"}, expect=400
    )
    assert_openai_error(clipless, code="invalid_type", param="video")
    cast, _ = await rig.call(
        "POST", "/v1/videos", json={"prompt": "Mossy", "characters": [{"id": made["id"]}]}
    )
    assert rig.sim.jobs[cast["id"]].characters == (made["id"],)
    bad, _ = await rig.call(
        "POST", "/v1/videos", json={"prompt": "x", "characters": "c"}, expect=400
    )
    assert_openai_error(bad, code="invalid_value", param="characters")
