"""Slow and idle clients give their connections and memory back (issue 15, point 10).

A connection that has not finished its headers within ``server.header_timeout`` is closed, and
``/healthz`` answers all the while; a body slower than ``server.min_upload_rate`` allows (on top
of ``server.body_timeout``) is a 408 in the envelope.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from router import appkeys as keys
from router.runtime.connections import is_idle
from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    local_store,
    sim_provider,
    wait_for,
)
from tests.raw_client import RawAnswer, parse_answer
from tests.redis_rig import RedisServer

SLOW = {"header_timeout": 0.5, "body_timeout": 0.3, "min_upload_rate": 10_000_000}


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory([sim_provider("sim-a", render_seconds=30)], server=SLOW)


def port_of(proxy: RunningProxy) -> int:
    return int(proxy.url.rsplit(":", 1)[1])


async def test_connections_that_never_finish_their_headers_are_closed(proxy: RunningProxy) -> None:
    opened = []
    for _ in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
        writer.write(b"POST /v1/videos HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        opened.append((reader, writer))
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{proxy.url}/healthz") as response,
        ):
            assert response.status == 200  # answered while 100 connections hang

        async def closed(reader: asyncio.StreamReader) -> bytes:
            return await reader.read()

        async with asyncio.timeout(5):  # header_timeout is 0.5 s; before issue 15 it was 75 s+
            await asyncio.gather(*(closed(reader) for reader, _ in opened))
    finally:
        for _, writer in opened:
            writer.close()


async def test_a_stalled_upload_is_a_408_and_nothing_is_stored(proxy: RunningProxy) -> None:
    head = (
        b"POST /v1/videos HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        + f"Authorization: Bearer {ALICE}\r\n".encode()
        + b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
        + b'{"prompt": "'
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(5):
            answer = parse_answer(await reader.read())
    finally:
        writer.close()
    assert answer.status == 408, answer
    assert answer.is_envelope()
    assert answer.json()["error"]["code"] == "request_timeout"
    assert len(local_store(proxy.app)) == 0


STALLED_CREATE = (
    b"POST /v1/videos HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    + f"Authorization: Bearer {ALICE}\r\n".encode()
    + b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
)


async def stalled_create(proxy: RunningProxy) -> RawAnswer:
    """A create whose headers arrive and whose body never does: what it is answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
    try:
        writer.write(STALLED_CREATE)
        await writer.drain()
        async with asyncio.timeout(5):  # the default body_timeout would be 30 s and more
            return parse_answer(await reader.read())
    finally:
        writer.close()


async def test_a_create_over_the_keys_limits_is_refused_on_its_headers(
    proxy_factory: ProxyFactory,
) -> None:
    """The key's concurrency is checked before the body is read: a key at its limit hears 429
    at once, even while its (stalled) upload has not arrived."""
    proxy = await proxy_factory(
        [sim_provider("sim-a", render_seconds=30)],
        keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1}],
    )
    await proxy.client().videos.create(prompt="a kite")  # in flight for 30 s

    answer = await stalled_create(proxy)

    assert answer.status == 429, answer
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"
    assert proxy.app[keys.LIMITS].rendering("sim-a") == 1


async def test_admission_on_headers_uses_the_fleets_limits(
    proxy_factory: ProxyFactory, redis_server: RedisServer
) -> None:
    """Two instances on one Redis: the key's only slot taken through one, a stalled upload to
    the other is refused on its headers."""
    fleet = [
        await proxy_factory(
            [sim_provider("sim-a", render_seconds=30)],
            keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1}],
            server={"link_secret": "one-secret-for-the-fleet-0123456789"},
            store={"backend": "redis", "url": redis_server.url},
        )
        for _ in range(2)
    ]
    await fleet[0].client().videos.create(prompt="a kite")

    answer = await stalled_create(fleet[1])

    assert answer.status == 429, answer
    assert answer.json()["error"]["code"] == "rate_limit_exceeded"


async def test_a_keyed_retry_of_a_create_that_went_through_is_answered_at_the_keys_limit(
    proxy_factory: ProxyFactory,
) -> None:
    """An ``Idempotency-Key`` create is admitted after its body: a retry of one that went
    through gets that job, even while the key is at its ``max_concurrent``."""
    proxy = await proxy_factory(
        [sim_provider("sim-a", render_seconds=30)],
        keys=[{"name": "alice", "key": ALICE, "max_concurrent": 1}],
    )
    client = proxy.client()
    headers = {"Idempotency-Key": "retry-me"}
    first = await client.videos.create(prompt="a kite", extra_headers=headers)

    again = await client.videos.create(prompt="a kite", extra_headers=headers)

    assert again.id == first.id
    assert proxy.app[keys.LIMITS].rendering("sim-a") == 1


async def open_connections(proxy: RunningProxy, count: int, *, idle: bool) -> bool:
    """Whether the proxy holds ``count`` connections, all idle (``idle``) or none."""
    server = proxy.runner.server
    assert server is not None
    handlers = server.connections
    return len(handlers) == count and all(is_idle(handler) is idle for handler in handlers)


def connection_counter(proxy: RunningProxy, name: str) -> float | None:
    return proxy.app[keys.METRICS].registry.get_sample_value(f"sora_proxy_connections_{name}_total")


async def healthz_status(proxy: RunningProxy) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{proxy.url}/healthz") as response:
        return response.status


async def test_at_max_connections_the_oldest_idle_one_makes_room_and_healthz_answers(
    proxy_factory: ProxyFactory,
) -> None:
    """A flood of connections that never finish their headers fills ``server.max_connections``;
    a health check on a new connection is answered at once, and the connection closed for it is
    the flood's longest-open one."""
    proxy = await proxy_factory([sim_provider("sim-a")], server={"max_connections": 20})
    flood = []
    try:
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: te")
            await writer.drain()
            flood.append((reader, writer))
        await wait_for(lambda: open_connections(proxy, 20, idle=True))

        assert await healthz_status(proxy) == 200

        assert connection_counter(proxy, "evicted") == 1
        assert connection_counter(proxy, "refused") == 0
        async with asyncio.timeout(5):  # closed for the health check, not after header_timeout
            with contextlib.suppress(ConnectionResetError):
                assert await flood[0][0].read() == b""
        assert not any(reader.at_eof() for reader, _ in flood[1:])
    finally:
        for _, writer in flood:
            writer.close()


async def test_at_max_connections_all_busy_a_new_one_is_closed_at_once(
    proxy_factory: ProxyFactory,
) -> None:
    """When every open connection has a request in progress (here creates whose bodies have
    not arrived), none is closed for a newcomer: the new connection is closed before a byte is
    read, and counted; once some close, new connections are served again."""
    proxy = await proxy_factory([sim_provider("sim-a")], server={"max_connections": 5})
    busy = []
    try:
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
            writer.write(STALLED_CREATE)
            await writer.drain()
            busy.append((reader, writer))
        await wait_for(lambda: open_connections(proxy, 5, idle=False))

        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(proxy))
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        async with asyncio.timeout(5):  # closed at once, not after header_timeout (15 s)
            with contextlib.suppress(ConnectionResetError):  # closed with the request unread
                assert await reader.read() == b""
        writer.close()
        assert connection_counter(proxy, "refused") == 1
        assert connection_counter(proxy, "evicted") == 0

        for _, busy_writer in busy[:2]:
            busy_writer.close()

        async def served() -> bool:
            try:
                return await healthz_status(proxy) == 200
            except aiohttp.ClientConnectionError:
                return False  # the server has not seen the closes yet

        await wait_for(served)
    finally:
        for _, busy_writer in busy:
            busy_writer.close()
