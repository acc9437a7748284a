"""Edits, extensions and characters on the wire (openai and azure adapters), the shared
"cannot" of kinds without them, and the metered wrapper passing them through."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from providers.azure import AzureVideosProvider
from providers.base import (
    BadUpstreamReply,
    InputReference,
    Operation,
    Rejected,
    RenderRequest,
    SourceVideo,
)
from providers.metered import MeteredProvider
from providers.mp4 import header
from providers.openai import OpenAIVideosProvider
from providers.relay import RelayProvider
from tests.clock import ManualClock
from tests.conftest import SimulatorFactory
from tests.fake_upstream import ScriptedFactory
from tests.providers.conftest import UPSTREAM_KEY

CLIP = header(1280, 720, 8, 1024).ljust(1024, b"\0")


def request(operation: Operation, source: SourceVideo, seconds: int = 8) -> RenderRequest:
    return RenderRequest("sora-2", "go on", "1280x720", seconds, operation=operation, source=source)


async def test_openai_edits_and_extends_held_and_uploaded_videos(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    clock = ManualClock(1_000_000.0)
    sim = await simulators(api_key=UPSTREAM_KEY, clock=clock, render_seconds=10)
    openai = adapters(OpenAIVideosProvider, f"{sim.base_url}/v1")
    made = await openai.create(RenderRequest("sora-2", "a kite", "1280x720", 8))
    clock.now += 10
    held = SourceVideo(upstream_id=made.upstream_id)
    edited = await openai.edit(request(Operation.EDIT, held))
    extended = await openai.extend(request(Operation.EXTEND, held, seconds=4))
    assert sim.jobs[edited.upstream_id].seconds == "8"
    assert sim.jobs[extended.upstream_id].seconds == "12"  # the stitched total
    uploaded = SourceVideo(data=CLIP, filename="v.mp4")
    from_upload = await openai.extend(request(Operation.EXTEND, uploaded, seconds=4))
    assert (sim.jobs[from_upload.upstream_id].size, sim.jobs[from_upload.upstream_id].seconds) == (
        "1280x720",
        "12",
    )
    assert (sim.stats.edits, sim.stats.extensions) == (1, 2)
    with pytest.raises(ValueError, match="source"):
        await openai.edit(RenderRequest("sora-2", "x", "1280x720", 4, operation=Operation.EDIT))


async def test_azure_uploads_a_character_and_casts_it_on_create(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    sim = await simulators(api_key=UPSTREAM_KEY)
    azure = adapters(AzureVideosProvider, sim.base_url, api_version="preview")
    character = await azure.create_character("Mossy", SourceVideo(data=CLIP))
    assert sim.characters[character].name == "Mossy"
    cast = RenderRequest("sora-2", "Mossy", "720x1280", 4, characters=(character,))
    made = await azure.create(cast)
    assert sim.jobs[made.upstream_id].characters == (character,)
    with pytest.raises(Rejected) as unknown:
        await azure.create(RenderRequest("sora-2", "x", "720x1280", 4, characters=("char_no",)))
    assert unknown.value.param == "characters"


async def test_a_cast_with_an_uploaded_image_goes_as_the_sdks_flattened_form(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("POST", "/v1/videos", {"id": "video_1", "status": "queued"})
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    image = InputReference(data=b"\x89PNG", filename="a.png", content_type="image/png")
    await openai.create(
        RenderRequest("sora-2", "x", "720x1280", 4, input_reference=image, characters=("c1", "c2"))
    )
    body = upstream.seen[-1].body
    assert b'name="characters[0][id]"' in body and b'name="characters[1][id]"' in body
    assert b'name="input_reference"; filename="a.png"' in body


async def test_a_character_reply_without_an_id_is_a_broken_upstream(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    upstream.reply("POST", "/v1/videos/characters", {"name": "x"})
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    with pytest.raises(BadUpstreamReply):
        await openai.create_character("x", SourceVideo(data=CLIP))


async def test_a_kind_without_the_operations_refuses_them_without_calling_out(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    relay = adapters(RelayProvider, upstream.url)
    assert relay.features == frozenset() and not relay.cancels
    held = SourceVideo(upstream_id="t1")
    calls = [
        ("edit", relay.edit(request(Operation.EDIT, held))),
        ("extend", relay.extend(request(Operation.EXTEND, held))),
        ("characters", relay.create_character("x", SourceVideo(data=CLIP))),
        ("cancel", relay.cancel("t1")),
    ]
    for operation, call in calls:
        with pytest.raises(Rejected) as refused:
            await call
        assert refused.value.code == f"{operation}_not_supported"
    assert upstream.seen == []


async def test_the_metered_wrapper_passes_every_new_operation_through(
    simulators: SimulatorFactory, adapters: Callable[..., Any]
) -> None:
    calls: list[tuple[str, str]] = []
    sim = await simulators(api_key=UPSTREAM_KEY, render_seconds=0)
    inner = adapters(OpenAIVideosProvider, f"{sim.base_url}/v1")
    metered = MeteredProvider(
        inner, lambda p, op, outcome, s: calls.append((op, outcome)), lambda p, s: None
    )
    assert metered.features == inner.features and metered.cancels is False
    made = await metered.create(RenderRequest("sora-2", "a kite", "1280x720", 4))
    await metered.edit(request(Operation.EDIT, SourceVideo(upstream_id=made.upstream_id), 4))
    await metered.extend(request(Operation.EXTEND, SourceVideo(upstream_id=made.upstream_id), 4))
    await metered.create_character("Mossy", SourceVideo(data=CLIP))
    with pytest.raises(Rejected):
        await metered.cancel(made.upstream_id)
    assert calls == [
        ("create", "ok"),
        ("edit", "ok"),
        ("extend", "ok"),
        ("characters", "ok"),
        ("cancel", "rejected"),
    ]
