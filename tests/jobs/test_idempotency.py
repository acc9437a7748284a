"""``Idempotency-Key`` on creates (issue 5): one job and one upstream render per key.

Over loopback against simulators, plus a gated upstream whose creates wait for the test, so
concurrent requests provably overlap. The store's part (the record written with its job, the
schema migration, expiry) is checked on real SQLite files at the end.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web

from providers.base import InputReference
from router import appkeys as keys
from router.errors import InvalidRequest
from router.jobs.idempotency import Idempotency, Remix, fingerprint
from router.records.job import Job, new_job_id
from router.records.request import CreateRequest
from router.store.base import IDEMPOTENCY_TTL, IdempotencyClaim
from router.store.sqlite import SCHEMA_VERSION, SqliteJobStore
from tests.clock import ManualClock
from tests.conftest import (
    ALICE,
    BOB,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    local_store,
    sim_provider,
    upstream_provider,
    wait_for,
)
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
BODY = {"prompt": "a paper boat", "model": "sora-2", "size": "1280x720", "seconds": "4"}


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    """Renders outlast every test here, so the poller has nothing to settle."""
    return await proxy_factory([sim_provider("sim-a", render_seconds=30)])


async def post(
    proxy: RunningProxy,
    body: Any,
    key: str | None,
    *,
    api_key: str = ALICE,
    path: str = "/v1/videos",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers = {"Authorization": f"Bearer {api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{proxy.url}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


async def test_the_same_key_twice_answers_the_first_job(proxy: RunningProxy) -> None:
    first = await post(proxy, BODY, "boat-1")
    again = await post(proxy, BODY, "boat-1")
    assert first[0] == again[0] == 200
    assert again[1]["id"] == first[1]["id"]
    assert proxy.stats("sim-a").creates_received == 1
    assert len(local_store(proxy.app)) == 1


async def test_without_a_key_every_create_is_a_new_job(proxy: RunningProxy) -> None:
    first, again = await post(proxy, BODY, None), await post(proxy, BODY, None)
    assert first[1]["id"] != again[1]["id"]
    assert proxy.stats("sim-a").creates_received == 2


async def test_the_same_key_with_another_body_is_a_409_that_the_sdk_does_not_retry(
    proxy: RunningProxy,
) -> None:
    status, body, _ = await post(proxy, BODY, "boat-2")
    assert status == 200
    status, body, headers = await post(proxy, {**BODY, "prompt": "a paper plane"}, "boat-2")
    assert status == 409
    assert body == {
        "error": {
            "message": body["error"]["message"],
            "type": "invalid_request_error",
            "param": "Idempotency-Key",
            "code": "idempotency_key_reused",
        }
    }
    assert "different request" in body["error"]["message"]
    assert headers["x-should-retry"] == "false"
    assert proxy.stats("sim-a").creates_received == 1


async def test_keys_are_per_client_key(proxy: RunningProxy) -> None:
    alice = await post(proxy, BODY, "shared", api_key=ALICE)
    bob = await post(proxy, BODY, "shared", api_key=BOB)
    assert alice[0] == bob[0] == 200
    assert alice[1]["id"] != bob[1]["id"]
    assert proxy.stats("sim-a").creates_received == 2
    # and each client's retry still finds its own job
    assert (await post(proxy, BODY, "shared", api_key=BOB))[1]["id"] == bob[1]["id"]


async def test_the_sdk_with_the_header_gets_the_same_video_for_an_upload(
    proxy: RunningProxy,
) -> None:
    """The SDK sends multipart with a fresh boundary each time; the key still matches."""
    client = proxy.client()

    async def create() -> openai.types.Video:
        return await client.videos.create(
            prompt="a lighthouse",
            input_reference=("frame.png", PNG_1x1, "image/png"),
            extra_headers={"Idempotency-Key": "sdk-lighthouse"},
        )

    first, again = await create(), await create()
    assert again.id == first.id
    assert proxy.stats("sim-a").creates_received == 1
    with pytest.raises(openai.ConflictError) as raised:
        await client.videos.create(
            prompt="a lighthouse", extra_headers={"Idempotency-Key": "sdk-lighthouse"}
        )
    assert raised.value.code == "idempotency_key_reused"


async def test_relay_creates_take_the_header_and_match_the_same_openai_create(
    proxy: RunningProxy,
) -> None:
    relay = {"prompt": "a kite", "model": "sora-2", "aspect_ratio": "16:9", "duration": "10"}
    path = "/v2/videos/generations"
    first = await post(proxy, relay, "kite", path=path)
    again = await post(proxy, relay, "kite", path=path)
    assert first[0] == again[0] == 200
    assert again[1] == first[1] == {"task_id": first[1]["task_id"]}
    # both dialects normalise to one create, so the key matches across them
    openai_body = {"prompt": "a kite", "model": "sora-2", "size": "1280x720", "seconds": "10"}
    assert (await post(proxy, openai_body, "kite"))[1]["id"] == first[1]["task_id"]
    status, body, _ = await post(proxy, {**relay, "duration": "15"}, "kite", path=path)
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
    assert proxy.stats("sim-a").creates_received == 1


async def test_a_remix_takes_the_header_too(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory([sim_provider("sim-a")])
    client = proxy.client()
    source = await client.videos.create_and_poll(prompt="a paper boat", model="sora-2")
    header = {"Idempotency-Key": "remix-1"}
    first = await client.videos.remix(source.id, prompt="at night", extra_headers=header)
    again = await client.videos.remix(source.id, prompt="at night", extra_headers=header)
    assert again.id == first.id != source.id
    assert proxy.stats("sim-a").remixes == 1
    with pytest.raises(openai.ConflictError):
        await client.videos.remix(source.id, prompt="at dawn", extra_headers=header)


@pytest.mark.parametrize(
    "key", ["", "x" * 256, "tab\there"], ids=["empty", "too long", "control char"]
)
async def test_a_malformed_key_is_a_400_naming_the_header(proxy: RunningProxy, key: str) -> None:
    status, body, _ = await post(proxy, BODY, key)
    assert status == 400
    assert (body["error"]["param"], body["error"]["code"]) == ("Idempotency-Key", "invalid_value")
    assert proxy.stats("sim-a").creates_received == 0


async def test_a_255_character_key_is_accepted(proxy: RunningProxy) -> None:
    key = "k" * 254 + "~"
    assert (await post(proxy, BODY, key))[1]["id"] == (await post(proxy, BODY, key))[1]["id"]


async def test_a_refused_create_records_nothing(proxy_factory: ProxyFactory) -> None:
    proxy = await proxy_factory(
        [
            sim_provider("sim-a", render_seconds=30, moderation_prompt_words=["forbidden"]),
            sim_provider("sim-b", render_seconds=30, moderation_prompt_words=["forbidden"]),
        ]
    )
    status, body, _ = await post(proxy, {"prompt": "a forbidden thing"}, "try-1")
    assert (status, body["error"]["code"]) == (400, "moderation_blocked")
    assert local_store(proxy.app).idempotency_record("alice", "try-1") is None
    # nothing was created, so the key is free: a corrected request is not a 409
    status, body, _ = await post(proxy, {"prompt": "a permitted thing"}, "try-1")
    assert status == 200
    assert (await post(proxy, {"prompt": "a permitted thing"}, "try-1"))[1]["id"] == body["id"]


async def test_a_restarted_proxy_still_answers_the_first_job(
    proxy_factory: ProxyFactory, simulators: SimulatorFactory
) -> None:
    """The SDK may retry after the proxy restarted: the key is in the SQLite file."""
    sim = await simulators(render_seconds=30)
    providers = [upstream_provider("up", "openai", sim)]
    first = await proxy_factory(providers)
    created = await post(first, BODY, "survives")
    await first.stop()

    second = await proxy_factory(providers)  # same tmp_path: the same jobs.db
    again = await post(second, BODY, "survives")
    assert again[0] == 200 and again[1]["id"] == created[1]["id"]
    assert (await post(second, {**BODY, "prompt": "other"}, "survives"))[0] == 409
    assert sim.stats.creates_received == 1


class GatedUpstream:
    """An OpenAI-dialect upstream (a scripted one) whose creates wait for ``release``; prompts
    with "refuse" are then answered 400 moderation_blocked."""

    def __init__(self, upstream: ScriptedUpstream) -> None:
        self.creates = 0
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self._upstream = upstream
        upstream.answer("POST", "/v1/videos", self._create)
        upstream.reply("GET", "/v1/videos", {"object": "list", "data": []})

    def provider(self) -> dict[str, Any]:
        return {
            "name": "gated",
            "kind": "openai",
            "base_url": f"{self._upstream.url}/v1",
            "api_key": "sk-upstream",
            "models": {"sora-2": {"price_per_second": 0.1}},
            "poll_interval": 0.05,
            "timeout": 10,
        }

    async def _create(self, request: web.Request) -> web.Response:
        self.creates += 1
        prompt = (await request.json())["prompt"]
        self.arrived.set()
        await self.release.wait()
        if "refuse" in prompt:
            error = {"message": "blocked", "type": "invalid_request_error", "param": "prompt"}
            return web.json_response({"error": {**error, "code": "moderation_blocked"}}, status=400)
        job = {"id": f"up_{self.creates}", "status": "queued", "progress": 0}
        self._upstream.reply("GET", f"/v1/videos/{job['id']}", job)
        return web.json_response(job)


@pytest.fixture
async def gated(scripted: ScriptedFactory) -> AsyncIterator[GatedUpstream]:
    upstream = GatedUpstream(await scripted())
    yield upstream
    upstream.release.set()  # a held handler would keep the server's shutdown waiting


async def overlapping(
    proxy: RunningProxy, gated: GatedUpstream, bodies: list[Any], key: str
) -> list[tuple[int, dict[str, Any], dict[str, str]]]:
    """Send ``bodies`` with one key, the first alone; release the upstream create only once
    every other request is waiting on it (or has been answered)."""
    first = asyncio.create_task(post(proxy, bodies[0], key))
    await asyncio.wait_for(gated.arrived.wait(), 10)
    rest = [asyncio.create_task(post(proxy, body, key)) for body in bodies[1:]]
    idempotency = proxy.app[keys.IDEMPOTENCY]

    async def settled() -> bool:
        return idempotency.waiting + sum(task.done() for task in rest) == len(rest)

    await wait_for(settled)
    gated.release.set()
    return await asyncio.gather(first, *rest)


async def test_concurrent_requests_with_one_key_make_one_job_and_one_render(
    proxy_factory: ProxyFactory, gated: GatedUpstream
) -> None:
    proxy = await proxy_factory([gated.provider()])
    results = await overlapping(proxy, gated, [BODY] * 4, "together")
    assert [status for status, _, _ in results] == [200] * 4
    assert len({body["id"] for _, body, _ in results}) == 1
    assert gated.creates == 1
    assert len(local_store(proxy.app)) == 1


async def test_a_concurrent_request_with_another_body_is_a_409_at_once(
    proxy_factory: ProxyFactory, gated: GatedUpstream
) -> None:
    proxy = await proxy_factory([gated.provider()])
    results = await overlapping(proxy, gated, [BODY, {**BODY, "prompt": "other"}], "clash")
    assert [status for status, _, _ in results] == [200, 409]
    assert gated.creates == 1


async def test_waiters_share_the_first_requests_failure_and_the_key_stays_free(
    proxy_factory: ProxyFactory, gated: GatedUpstream
) -> None:
    proxy = await proxy_factory([gated.provider()])
    refused = {**BODY, "prompt": "please refuse this"}
    results = await overlapping(proxy, gated, [refused] * 3, "fails")
    assert [status for status, _, _ in results] == [400] * 3
    assert all(body == results[0][1] for _, body, _ in results)
    assert results[0][1]["error"]["code"] == "moderation_blocked"
    assert gated.creates == 1
    status, _, _ = await post(proxy, BODY, "fails")  # nothing recorded: a new body is fine
    assert status == 200 and gated.creates == 2


# --- the coordinator on its own, over a real store ---

REQUEST = CreateRequest(model="sora-2", prompt="p", size="1280x720", seconds=4)


def make_job(owner: str = "alice", created_at: float | None = 1000.0) -> Job:
    return Job(
        id=new_job_id(),
        owner=owner,
        model="sora-2",
        prompt="p",
        size="1280x720",
        seconds=4,
        created_at=created_at,  # type: ignore[arg-type]  # None violates NOT NULL on purpose
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "jobs.sqlite3"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqliteJobStore]:
    store = SqliteJobStore(db)
    await store.open()
    yield store
    await store.close()


def inserting(
    store: SqliteJobStore, started: asyncio.Event | None = None, gate: asyncio.Event | None = None
) -> Callable[[IdempotencyClaim | None, str | None], Awaitable[Job]]:
    """A ``submit`` that inserts a new job with its claim the way ``Dispatcher.create`` does;
    it sets ``started``, then waits for ``gate``."""

    async def submit(claim: IdempotencyClaim | None, job_id: str | None) -> Job:
        if started is not None:
            started.set()
        if gate is not None:
            await gate.wait()
        job = make_job()
        job.id = job_id or job.id  # the id its key was claimed for
        await store.insert(job, None, claim)
        return job

    return submit


async def waiting(idempotency: Idempotency) -> bool:
    return idempotency.waiting > 0


async def test_a_cancelled_first_request_lets_a_waiter_create(store: SqliteJobStore) -> None:
    idempotency, started = Idempotency(store), asyncio.Event()
    submit = inserting(store, started, gate=asyncio.Event())  # never opened
    leader = asyncio.ensure_future(idempotency.run("alice", "k", REQUEST, submit))
    await started.wait()
    waiter = asyncio.ensure_future(idempotency.run("alice", "k", REQUEST, inserting(store)))
    await wait_for(lambda: waiting(idempotency))
    leader.cancel()
    job = await waiter
    assert leader.cancelled()
    record = store.idempotency_record("alice", "k")
    assert record is not None and record.job_id == job.id
    assert len(store) == 1


async def test_a_waiter_gets_the_same_error_and_nothing_is_recorded(store: SqliteJobStore) -> None:
    idempotency, started, gate = Idempotency(store), asyncio.Event(), asyncio.Event()
    refusal = InvalidRequest("no", code="moderation_blocked")

    async def refuse(claim: IdempotencyClaim | None, job_id: str | None) -> Job:
        started.set()
        await gate.wait()
        raise refusal

    leader = asyncio.ensure_future(idempotency.run("alice", "k", REQUEST, refuse))
    await started.wait()
    waiter = asyncio.ensure_future(idempotency.run("alice", "k", REQUEST, inserting(store)))
    await wait_for(lambda: waiting(idempotency))
    gate.set()
    outcomes = await asyncio.gather(leader, waiter, return_exceptions=True)
    assert outcomes[0] is refusal and outcomes[1] is refusal
    assert store.idempotency_record("alice", "k") is None and len(store) == 0


async def test_the_fingerprint_is_the_normalised_request() -> None:
    upload = InputReference(data=PNG_1x1, filename="f.png", content_type="image/png")
    with_upload = CreateRequest("sora-2", "p", "1280x720", 4, upload)
    same = CreateRequest(
        "sora-2", "p", "1280x720", 4, InputReference(PNG_1x1, "f.png", "image/png")
    )
    assert await fingerprint(with_upload) == await fingerprint(same)
    others: list[CreateRequest | Remix] = [
        REQUEST,
        CreateRequest("sora-2", "p", "1280x720", 8),
        CreateRequest(
            "sora-2", "p", "1280x720", 4, InputReference(PNG_1x1 + b"x", "f.png", "image/png")
        ),
        CreateRequest("sora-2", "p", "1280x720", 4, InputReference(url="https://x/f.png")),
        Remix("video_1", "p"),
    ]
    marks = {await fingerprint(r) for r in [with_upload, *others]}
    assert len(marks) == 1 + len(others)
    big = InputReference(data=bytes(3 << 20))  # hashed on a worker thread: same answer
    big_request = CreateRequest("sora-2", "p", "1280x720", 4, big)
    assert await fingerprint(big_request) == await fingerprint(big_request)


# --- the store's part ---


async def test_the_record_is_written_with_its_job_and_loaded_at_open(
    store: SqliteJobStore, db: Path
) -> None:
    job = make_job()
    await store.insert(job, None, IdempotencyClaim("alice", "k", "f1"))
    await store.insert(bound := make_job(), None, IdempotencyClaim("alice", "k2", "f2"))
    await store.insert(unbound := make_job())
    with pytest.raises(ValueError, match="owner"):  # a claim belongs to the job's own owner
        await store.insert(make_job(owner="alice"), None, IdempotencyClaim("bob", "k3", "f3"))
    record = store.idempotency_record("alice", "k")
    assert record is not None and (record.job_id, record.fingerprint) == (job.id, "f1")

    again = SqliteJobStore(db)
    await again.open()
    try:
        loaded = again.idempotency_record("alice", "k2")
        assert loaded is not None and loaded.job_id == bound.id
        assert again.idempotency_record("bob", "k3") is None
        assert unbound.id not in {r[0] for r in _rows(db)}
    finally:
        await again.close()


async def test_a_failed_insert_keeps_no_record(store: SqliteJobStore, db: Path) -> None:
    bad = make_job(created_at=None)  # violates jobs.created_at NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        await store.insert(bad, None, IdempotencyClaim("alice", "k", "f"))
    assert store.idempotency_record("alice", "k") is None
    await store.flush()
    assert _rows(db) == []


async def test_delete_drops_the_jobs_records(store: SqliteJobStore, db: Path) -> None:
    job = make_job()
    await store.insert(job, None, IdempotencyClaim("alice", "k", "f"))
    await store.delete(job.id)
    assert store.idempotency_record("alice", "k") is None
    assert _rows(db) == []


async def test_records_expire_after_a_day_and_are_pruned_at_open(db: Path) -> None:
    clock = ManualClock()
    store = SqliteJobStore(db, clock=clock)
    await store.open()
    await store.insert(old := make_job(), None, IdempotencyClaim("alice", "old", "f"))
    clock.advance(IDEMPOTENCY_TTL - 1)
    await store.insert(make_job(), None, IdempotencyClaim("alice", "new", "f"))
    assert store.idempotency_record("alice", "old") is not None
    clock.advance(1)
    assert store.idempotency_record("alice", "old") is None
    assert store.idempotency_record("alice", "new") is not None
    # an expired key can be used again: the new record replaces the old one
    await store.insert(reused := make_job(), None, IdempotencyClaim("alice", "old", "g"))
    record = store.idempotency_record("alice", "old")
    assert record is not None and record.job_id == reused.id
    await store.delete(old.id)  # the replaced record is not the old job's any more
    assert store.idempotency_record("alice", "old") is not None
    await store.close()

    clock.advance(IDEMPOTENCY_TTL - 1)  # "new" is now a day old, the reused one is not
    again = SqliteJobStore(db, clock=clock)
    await again.open()
    await again.close()
    assert [row[1] for row in _rows(db)] == ["old"]


async def test_a_version_1_file_is_migrated_and_keeps_its_jobs(db: Path) -> None:
    store = SqliteJobStore(db)
    await store.open()
    await store.insert(job := make_job())
    await store.close()
    with sqlite3.connect(db) as conn:  # back to what version 1 wrote
        conn.execute("DROP TABLE idempotency")
        conn.execute("PRAGMA user_version = 1")
    conn.close()

    again = SqliteJobStore(db)
    await again.open()
    try:
        assert again.get(job.id) is not None
        await again.insert(make_job(), None, IdempotencyClaim("alice", "k", "f"))
        assert again.idempotency_record("alice", "k") is not None
    finally:
        await again.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()
    assert SCHEMA_VERSION == 2


def _rows(db: Path) -> list[tuple[str, str]]:
    """(job_id, key) of every idempotency row on disk."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT job_id, key FROM idempotency ORDER BY created_at").fetchall()
    conn.close()
    return [(str(job_id), str(key)) for job_id, key in rows]
