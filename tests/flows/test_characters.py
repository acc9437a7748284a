"""Characters owned by the proxy: kept, private to their key, cast on create, created on a
provider lazily and carried along by a failover (issue 18, acceptance 2)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

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
    upstream_provider,
)
from tests.redis_rig import RedisServer
from tests.sim_rig import assert_openai_error

CLIP = b"\x00\x00\x00\x18ftypmp42" + bytes(64)


async def call(
    proxy: RunningProxy,
    method: str,
    path: str,
    *,
    key: str = ALICE,
    expect: int = 200,
    **kwargs: Any,
) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, f"{proxy.url}{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
        ) as response,
    ):
        body: dict[str, Any] = await response.json()
        assert response.status == expect, body
        return body


def character_form(name: str | None = "Mossy", clip: bytes | None = CLIP) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    if name is not None:
        form.add_field("name", name)
    if clip is not None:
        form.add_field("video", clip, filename="mossy.mp4", content_type="video/mp4")
    return form


async def new_character(proxy: RunningProxy, name: str = "Mossy", key: str = ALICE) -> str:
    body = await call(proxy, "POST", "/v1/videos/characters", key=key, data=character_form(name))
    assert set(body) == {"id", "name", "created_at"} and body["name"] == name
    character_id: str = body["id"]
    return character_id


async def test_a_render_with_a_character_fails_over_and_takes_the_character_along(
    proxy_factory: ProxyFactory,
) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("first", price=0.01, fail_words=["mossy"]),
            sim_provider("second", price=0.1),
            sim_provider("third", price=0.5),
        ],
        routing={"strategy": "cheapest"},
    )
    character = await new_character(proxy)
    video = await proxy.client().videos.create(
        prompt="Mossy walks in the rain", extra_body={"characters": [{"id": character}]}
    )
    job = await finished_job(proxy, video.id)
    assert job.state is JobState.COMPLETED
    assert [a.provider for a in job.attempts] == ["first", "second"]
    for name, attempt in zip(("first", "second"), job.attempts, strict=True):
        sim = proxy.simulator(name)
        render = sim.jobs[attempt.upstream_id]
        (cast,) = render.characters
        assert sim.characters[cast].clip == CLIP
        assert sim.characters[cast].sequence < render.sequence  # uploaded before the render
    assert proxy.stats("third").characters_created == 0  # never went there: never uploaded
    again = await proxy.client().videos.create(
        prompt="Mossy again", extra_body={"characters": [{"id": character}]}
    )
    assert (await finished_job(proxy, again.id)).state is JobState.COMPLETED
    assert proxy.stats("second").characters_created == 1  # reused there, not uploaded again


async def test_a_kind_that_cannot_cast_is_not_a_candidate(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    relay_sim: Simulator = await simulators()
    relay = upstream_provider(
        "relay", "relay", relay_sim, models={"sora-2": {"price_per_second": 0.01}}
    )
    proxy = await proxy_factory(
        [relay, sim_provider("sim", price=0.5)], routing={"strategy": "cheapest"}
    )
    character = await new_character(proxy)
    video = await proxy.client().videos.create(
        prompt="Mossy", extra_body={"characters": [{"id": character}]}
    )
    assert (await finished_job(proxy, video.id)).attempts[0].provider == "sim"
    assert relay_sim.stats.creates_received == 0
    only_relay = await proxy_factory([relay])
    character = await new_character(only_relay)
    refused = await call(
        only_relay,
        "POST",
        "/v1/videos",
        json={"prompt": "Mossy", "characters": [{"id": character}]},
        expect=400,
    )
    assert_openai_error(refused, code="characters_not_supported", param="characters")


async def test_a_character_made_through_one_instance_is_cast_through_another(
    redis_server: RedisServer, proxy_factory: ProxyFactory
) -> None:
    fleet = {"backend": "redis", "url": redis_server.url}
    server = {"link_secret": "fleet-link-secret-0123456789abcdef"}
    made_on, cast_on = [
        await proxy_factory([sim_provider("sim")], store=fleet, server=server) for _ in range(2)
    ]
    character = await new_character(made_on)
    found = await call(cast_on, "GET", f"/v1/videos/characters/{character}")
    assert found["id"] == character and found["name"] == "Mossy"
    await call(cast_on, "GET", f"/v1/videos/characters/{character}", key=BOB, expect=404)
    video = await cast_on.client().videos.create(
        prompt="Mossy", extra_body={"characters": [{"id": character}]}
    )
    job = await finished_job(cast_on, video.id)
    sim = cast_on.simulator("sim")
    (uploaded,) = sim.jobs[job.attempts[0].upstream_id].characters
    assert sim.characters[uploaded].clip == CLIP  # the clip came from the shared store
    assert made_on.stats("sim").characters_created == 0


async def test_characters_belong_to_their_key(proxy: RunningProxy) -> None:
    character = await new_character(proxy)
    found = await call(proxy, "GET", f"/v1/videos/characters/{character}")
    assert found["id"] == character
    other = await call(proxy, "GET", f"/v1/videos/characters/{character}", key=BOB, expect=404)
    assert_openai_error(other, code="not_found", param="character_id")
    cast = {"prompt": "x", "characters": [{"id": character}]}
    refused = await call(proxy, "POST", "/v1/videos", key=BOB, json=cast, expect=404)
    assert_openai_error(refused, code="not_found", param="characters")


@pytest.mark.parametrize(
    ("form", "code", "param"),
    [
        (character_form(name=""), "missing_required_parameter", "name"),
        (character_form(name="x" * 81), "invalid_value", "name"),
        (character_form(name=None), "missing_required_parameter", "name"),
        (character_form(clip=None), "missing_required_parameter", "video"),
    ],
)
async def test_character_uploads_are_checked(
    proxy: RunningProxy, form: aiohttp.FormData, code: str, param: str
) -> None:
    refused = await call(proxy, "POST", "/v1/videos/characters", data=form, expect=400)
    assert_openai_error(refused, code=code, param=param)


async def test_a_character_upload_must_be_multipart(proxy: RunningProxy) -> None:
    refused = await call(proxy, "POST", "/v1/videos/characters", json={"name": "x"}, expect=400)
    assert_openai_error(refused, code="unsupported_content_type")


async def test_the_cast_is_read_from_every_body_form_and_checked(proxy: RunningProxy) -> None:
    one, two, three = [await new_character(proxy, name) for name in ("A", "B", "C")]
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("prompt", "A and B")
    form.add_field("characters[0][id]", one)
    form.add_field("characters[1][id]", two)
    video = await call(proxy, "POST", "/v1/videos", data=form)
    assert (await finished_job(proxy, video["id"])).characters == (one, two)
    too_many = {"prompt": "x", "characters": [{"id": c} for c in (one, two, three)]}
    refused = await call(proxy, "POST", "/v1/videos", json=too_many, expect=400)
    assert_openai_error(refused, code="too_many_characters", param="characters")
    twice = {"prompt": "x", "characters": [{"id": one}, {"id": one}]}
    refused = await call(proxy, "POST", "/v1/videos", json=twice, expect=400)
    assert_openai_error(refused, code="invalid_value", param="characters")
    for bad in ([{"name": "A"}], "char_x", [{"id": ""}]):
        refused = await call(
            proxy, "POST", "/v1/videos", json={"prompt": "x", "characters": bad}, expect=400
        )
        assert_openai_error(refused, code="invalid_type", param="characters")
    unknown = {"prompt": "x", "characters": [{"id": "char_nope"}]}
    assert_openai_error(
        await call(proxy, "POST", "/v1/videos", json=unknown, expect=404),
        code="not_found",
        param="characters",
    )
