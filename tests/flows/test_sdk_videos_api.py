"""All twelve ``client.videos`` methods of the official SDK, unchanged, sync and async, through
the proxy on simulated providers (issue 18, acceptance 1)."""

from __future__ import annotations

import asyncio

import openai

from providers.mp4 import probe
from tests.conftest import ALICE, RunningProxy, stored_job

TWELVE = {
    "create",
    "create_and_poll",
    "create_character",
    "delete",
    "download_content",
    "edit",
    "extend",
    "get_character",
    "list",
    "poll",
    "remix",
    "retrieve",
}


def test_the_sdk_has_exactly_the_twelve_methods_covered_here() -> None:
    public = {
        name
        for name in dir(openai.resources.videos.Videos)
        if not name.startswith("_") and callable(getattr(openai.resources.videos.Videos, name))
    }
    assert public - {"with_raw_response", "with_streaming_response"} == TWELVE


async def test_every_method_async(proxy: RunningProxy) -> None:
    client = proxy.client()
    used = await _every_method_async(client, proxy)
    assert used == TWELVE


async def test_every_method_sync(proxy: RunningProxy) -> None:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=ALICE, max_retries=0, timeout=10)
    try:
        used = await asyncio.to_thread(_every_method_sync, client, proxy)
    finally:
        client.close()
    assert used == TWELVE


async def _every_method_async(client: openai.AsyncOpenAI, proxy: RunningProxy) -> set[str]:
    used: set[str] = set()
    video = await client.videos.create_and_poll(
        prompt="a red kite over the sea", seconds="4", size="1280x720", poll_interval_ms=50
    )
    used.add("create_and_poll")
    assert video.status == "completed"
    assert (await client.videos.retrieve(video.id)).status == "completed"
    used.add("retrieve")
    listed = [v.id async for v in client.videos.list()]
    used.add("list")
    assert video.id in listed
    mp4 = (await client.videos.download_content(video.id)).content
    used.add("download_content")
    info = probe(mp4)
    assert info is not None and (info.size, info.seconds) == ("1280x720", 4)

    remix = await client.videos.remix(video.id, prompt="the kite at night")
    used.add("remix")
    assert (await client.videos.poll(remix.id, poll_interval_ms=50)).status == "completed"
    used.add("poll")

    upload = ("kite.mp4", mp4, "video/mp4")
    edited = await client.videos.edit(prompt="make it autumn", video=upload)
    used.add("edit")
    assert (edited.size, edited.seconds) == ("1280x720", "4")
    extended = await client.videos.extend(prompt="the kite lands", seconds="8", video=upload)
    used.add("extend")
    assert extended.seconds == "12"  # the stitched total
    for job in (edited, extended):
        assert (await client.videos.poll(job.id, poll_interval_ms=50)).status == "completed"

    character = await client.videos.create_character(name="Kitey", video=upload)
    used.add("create_character")
    assert character.id is not None and character.id.startswith("char_")
    assert character.name == "Kitey"
    found = await client.videos.get_character(character.id)
    used.add("get_character")
    assert (found.id, found.name, found.created_at) == (character.id, "Kitey", character.created_at)
    cast = await client.videos.create(
        prompt="Kitey flies", extra_body={"characters": [{"id": character.id}]}
    )
    used.add("create")
    assert (await client.videos.poll(cast.id, poll_interval_ms=50)).status == "completed"
    _assert_cast(proxy, cast.id)

    deleted = await client.videos.delete(video.id)
    used.add("delete")
    assert deleted.deleted
    return used


def _every_method_sync(client: openai.OpenAI, proxy: RunningProxy) -> set[str]:
    used: set[str] = set()
    video = client.videos.create_and_poll(
        prompt="a paper boat", seconds="4", size="720x1280", poll_interval_ms=50
    )
    used.add("create_and_poll")
    assert client.videos.retrieve(video.id).status == "completed"
    used.add("retrieve")
    assert video.id in [v.id for v in client.videos.list()]
    used.add("list")
    mp4 = client.videos.download_content(video.id).content
    used.add("download_content")
    remix = client.videos.remix(video.id, prompt="the boat at dawn")
    used.add("remix")
    assert client.videos.poll(remix.id, poll_interval_ms=50).status == "completed"
    used.add("poll")
    upload = ("boat.mp4", mp4, "video/mp4")
    edited = client.videos.edit(prompt="make it rain", video=upload)
    used.add("edit")
    extended = client.videos.extend(prompt="the boat sinks", seconds="4", video=upload)
    used.add("extend")
    assert extended.seconds == "8"
    for job in (edited, extended):
        assert client.videos.poll(job.id, poll_interval_ms=50).status == "completed"
    character = client.videos.create_character(name="Captain", video=upload)
    used.add("create_character")
    assert character.id is not None
    assert client.videos.get_character(character.id).name == "Captain"
    used.add("get_character")
    cast = client.videos.create(
        prompt="Captain sails", extra_body={"characters": [{"id": character.id}]}
    )
    used.add("create")
    assert client.videos.poll(cast.id, poll_interval_ms=50).status == "completed"
    _assert_cast(proxy, cast.id)
    assert client.videos.delete(video.id).deleted
    used.add("delete")
    return used


def _assert_cast(proxy: RunningProxy, video_id: str) -> None:
    """The render's provider holds the character, uploaded there before the render."""
    job = stored_job(proxy, video_id)
    upstream = proxy.simulator(job.current.provider).jobs[job.current.upstream_id]
    assert len(upstream.characters) == 1
    character = proxy.simulator(job.current.provider).characters[upstream.characters[0]]
    assert character.sequence < upstream.sequence
