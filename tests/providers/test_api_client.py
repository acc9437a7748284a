"""The lean API client (``providers.api_client``) behind ``request_json``, against upstreams
faked byte by byte over loopback: framing, keep-alive, the cap, timeouts, cancellation, the
pool's limit, TLS; and the boundary it keeps (no redirect followed, the sent/not-sent split).
The property tests run on uvloop, as the proxy does; the rest on asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from providers.addresses import AddressPolicy, GuardedResolver
from providers.api_client import ApiClient, NotSent
from providers.api_connection import Broken, Reply, ReplyTooLong
from providers.base import (
    BadUpstreamReply,
    ConnectFailed,
    Rejected,
    RenderRequest,
    ServerFailed,
    UpstreamTimeout,
)
from providers.openai import OpenAIVideosProvider
from tests.conftest import wait_for
from tests.providers.conftest import UPSTREAM_KEY
from tests.raw_upstream import RawUpstream, Step, json_reply

REQUEST = RenderRequest(model="sora-2", prompt="a kite", size="1280x720", seconds=8)
QUEUED = {"id": "v1", "status": "queued"}
RawFactory = Callable[..., Awaitable[RawUpstream]]


@pytest.fixture
async def raw() -> AsyncIterator[RawFactory]:
    """Start ``RawUpstream`` servers answering with the steps given; stopped after."""
    async with AsyncExitStack() as stopping:

        async def make(*steps: Step) -> RawUpstream:
            upstream = RawUpstream(steps=list(steps))
            await upstream.start()
            stopping.push_async_callback(upstream.stop)
            return upstream

        yield make


def openai_at(upstream: RawUpstream, adapters: Callable[..., Any]) -> OpenAIVideosProvider:
    adapter: OpenAIVideosProvider = adapters(OpenAIVideosProvider, f"{upstream.url}/v1")
    return adapter


async def test_a_chunked_reply_in_pieces_is_read_whole(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await raw(Step(json_reply(QUEUED, framing="chunked", chunks=5)))
    job = await openai_at(upstream, adapters).get("v1")
    assert job.upstream_id == "v1"
    assert upstream.requests[0].line == b"GET /v1/videos/v1 HTTP/1.1"


async def test_keep_alive_reuses_one_connection_and_a_close_makes_a_new_one(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await raw(
        Step(json_reply(QUEUED)),
        Step(json_reply(QUEUED, headers=b"Connection: close\r\n"), after="close"),
        Step(json_reply(QUEUED, framing="close"), after="close"),  # body ends with the close
    )
    openai = openai_at(upstream, adapters)
    for _ in range(4):
        assert (await openai.get("v1")).upstream_id == "v1"
    assert [r.connection for r in upstream.requests] == [0, 0, 1, 2]


async def test_a_pooled_connection_the_server_closed_is_replaced_before_sending(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await raw(Step(json_reply(QUEUED), after="close"))  # closes an idle connection
    openai = openai_at(upstream, adapters)
    await openai.get("v1")
    await wait_for(_pool_empty(openai))  # the client saw the close
    await openai.create(REQUEST)  # a POST: it must go out once, on a new connection
    assert [(r.connection, r.line.split()[0]) for r in upstream.requests] == [
        (0, b"GET"),
        (1, b"POST"),
    ]


@pytest.mark.parametrize("operation", ["create", "get"])
async def test_a_reused_connection_lost_after_sending_resends_a_read_never_a_create(
    raw: RawFactory, adapters: Callable[..., Any], operation: str
) -> None:
    """The server hangs up on a pooled connection as the request goes out: a create is
    ambiguous (it may have been taken) and is not sent again; a read is, once."""
    upstream = await raw(Step(json_reply(QUEUED)), Step((), after="close"))
    openai = openai_at(upstream, adapters)
    await openai.get("v1")
    if operation == "create":
        with pytest.raises(UpstreamTimeout) as caught:
            await openai.create(REQUEST)
        assert caught.value.sent is None
        assert [r.connection for r in upstream.requests] == [0, 0]
    else:
        assert (await openai.get("v1")).upstream_id == "v1"
        assert [r.connection for r in upstream.requests] == [0, 0, 1]


async def test_an_error_reply_longer_than_the_cap_is_cut_and_its_connection_closed(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    long_error = {"error": {"message": "x" * 20_000, "code": "bad"}}
    upstream = await raw(Step(json_reply(long_error, status=400, framing="chunked", chunks=8)))
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1", max_reply_bytes=4096)
    with pytest.raises(Rejected):
        await openai.get("v1")
    await openai.get("v1")
    assert [r.connection for r in upstream.requests] == [0, 1]


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
async def test_a_reply_longer_than_the_cap_is_a_bad_reply_whatever_its_framing(
    raw: RawFactory, adapters: Callable[..., Any], framing: Any
) -> None:
    big = {"id": "v1", "status": "queued", "pad": "y" * 20_000}
    upstream = await raw(Step(json_reply(big, framing=framing, chunks=10)))
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1", max_reply_bytes=4096)
    with pytest.raises(BadUpstreamReply, match="longer than") as caught:
        await openai.create(REQUEST)
    assert caught.value.sent is True


async def test_no_answer_within_the_timeout_is_ambiguous(raw: RawFactory) -> None:
    upstream = await raw(Step((), after="hold"))
    openai = OpenAIVideosProvider(
        name="up", base_url=f"{upstream.url}/v1", api_key=UPSTREAM_KEY, timeout=0.2
    )
    try:
        with pytest.raises(UpstreamTimeout) as caught:
            await openai.create(REQUEST)
        assert caught.value.sent is None
        await wait_for(_nothing_open(upstream))  # the connection was closed, not pooled
    finally:
        await openai.aclose()


async def test_a_cancelled_call_closes_its_connection_and_pools_nothing(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await raw(Step((), after="hold"))
    openai = openai_at(upstream, adapters)
    call = asyncio.create_task(openai.get("v1"))
    await wait_for(_requests(upstream, 1))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_for(_nothing_open(upstream))
    await openai.get("v1")
    assert [r.connection for r in upstream.requests] == [0, 1]


async def test_a_redirect_is_not_followed(raw: RawFactory, adapters: Callable[..., Any]) -> None:
    redirect = b"HTTP/1.1 307 X\r\nLocation: http://127.0.0.2:1/steal\r\nContent-Length: 0\r\n\r\n"
    upstream = await raw(Step((redirect,)))
    with pytest.raises(ServerFailed, match="redirect"):
        await openai_at(upstream, adapters).create(REQUEST)
    assert len(upstream.requests) == 1


async def test_interim_replies_are_skipped(raw: RawFactory, adapters: Callable[..., Any]) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
    upstream = await raw(Step((early, *json_reply(QUEUED))))
    assert (await openai_at(upstream, adapters).get("v1")).upstream_id == "v1"


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n",
    ],
    ids=["not-http", "two-lengths", "huge-header"],
)
async def test_a_malformed_reply_is_ambiguous(
    raw: RawFactory, adapters: Callable[..., Any], reply: bytes
) -> None:
    upstream = await raw(Step((reply,)))
    with pytest.raises(UpstreamTimeout) as caught:
        await openai_at(upstream, adapters).create(REQUEST)
    assert caught.value.sent is None


async def test_a_refused_connection_is_not_sent(adapters: Callable[..., Any]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    openai = adapters(OpenAIVideosProvider, f"http://127.0.0.1:{port}/v1")
    with pytest.raises(ConnectFailed) as caught:
        await openai.create(REQUEST)
    assert caught.value.sent is False
    assert UPSTREAM_KEY not in str(caught.value)


async def test_the_request_carries_the_key_and_nothing_an_id_could_add(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await raw()
    openai = openai_at(upstream, adapters)
    await openai.get("a b\r\nX-Injected: 1")  # an id stored before ids were checked
    head = upstream.requests[0].head
    assert head.startswith(b"GET /v1/videos/a%20b%0D%0AX-Injected%3A%201 HTTP/1.1\r\n")
    assert b"\r\nX-Injected" not in head
    assert f"Authorization: Bearer {UPSTREAM_KEY}\r\n".encode() in head


async def test_the_pool_holds_at_most_its_limit(raw: RawFactory) -> None:
    upstream = await raw()
    client = _client(upstream, limit=2)
    try:
        replies = await asyncio.gather(*(_get(client) for _ in range(6)))
        assert {r.status for r in replies} == {200}
        assert (upstream.connections, upstream.most_open, client.idle) == (2, 2, 2)
    finally:
        await client.aclose()
    await wait_for(_nothing_open(upstream))


# -- the parser, property-tested over loopback ---------------------------------------------------

bodies = st.dictionaries(
    st.text(max_size=8), st.text(max_size=40) | st.integers(-(2**63), 2**63 - 1), max_size=12
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    payload=bodies,
    status=st.sampled_from([200, 201, 202, 400, 404, 429, 500]),
    framing=st.sampled_from(["length", "chunked", "close"]),
    chunks=st.integers(min_value=1, max_value=9),
    cap=st.integers(min_value=0, max_value=400),
    split=st.integers(min_value=1, max_value=64),
)
def test_any_framing_in_any_pieces_gives_the_body_or_the_cap(
    payload: dict[str, Any], status: int, framing: Any, chunks: int, cap: int, split: int
) -> None:
    """A reply, cut into pieces of ``split`` bytes on the wire, is the body it framed: whole
    below the cap, cut at the cap for an error, ``ReplyTooLong`` for a success past it."""
    wire = b"".join(json_reply(payload, status=status, framing=framing, chunks=chunks))
    pieces = tuple(wire[i : i + split] for i in range(0, len(wire), split))
    expected = json_reply(payload)[0].split(b"\r\n\r\n", 1)[1]

    async def run() -> None:
        upstream = RawUpstream(
            default=Step(pieces, after="close" if framing == "close" else "keep")
        )
        await upstream.start()
        client = _client(upstream, limit=1)
        try:
            if status < 300 and len(expected) > cap:
                with pytest.raises(ReplyTooLong):
                    await _get(client, cap)
                return
            reply = await _get(client, cap)
            assert reply.status == status
            assert reply.body == expected[:cap]
        finally:
            await client.aclose()
            await upstream.stop()

    uvloop.run(run())  # the proxy's loop, whose transports are not asyncio's classes


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(garbage=st.binary(max_size=300), split=st.integers(min_value=1, max_value=50))
def test_any_bytes_give_a_reply_or_a_broken_call(garbage: bytes, split: int) -> None:
    """Whatever comes back, then a close: a reply, or ``Broken``; never a hang, never
    another error."""
    wire = b"HTTP/1.1 200 OK\r\n" + garbage
    pieces = tuple(wire[i : i + split] for i in range(0, len(wire), split))

    async def run() -> None:
        upstream = RawUpstream(default=Step(pieces, after="close"))
        await upstream.start()
        client = _client(upstream, limit=1)
        try:
            reply = await _get(client, 1000)
            assert isinstance(reply, Reply)
        except (Broken, ReplyTooLong):
            pass
        finally:
            await client.aclose()
            await upstream.stop()

    uvloop.run(run())  # the proxy's loop, whose transports are not asyncio's classes


# -- helpers -------------------------------------------------------------------------------------


def _client(upstream: RawUpstream, *, limit: int, tls: ssl.SSLContext | None = None) -> ApiClient:
    policy = AddressPolicy(upstream.url)
    resolver = GuardedResolver(policy)
    return ApiClient(upstream.url, {}, resolver, limit=limit, ssl_context=tls)


async def _get(client: ApiClient, cap: int = 1 << 20) -> Reply:
    return await client.call(
        "GET", "/v1/videos/v1", None, None, cap=cap, within=5, connect_within=5
    )


def _nothing_open(upstream: RawUpstream) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return upstream.open == 0

    return check


def _pool_empty(provider: OpenAIVideosProvider) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return provider._api is not None and provider._api.idle == 0

    return check


def _requests(upstream: RawUpstream, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(upstream.requests) >= count

    return check


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and its key (made by the openssl tool)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_upstream(certificate: tuple[Path, Path]) -> AsyncIterator[RawUpstream]:
    """An https upstream with the ``localhost`` certificate."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream = RawUpstream(tls=context, name="localhost")
    await upstream.start()
    yield upstream
    await upstream.stop()


def trusting(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate[0])


async def test_tls_goes_to_a_trusted_certificate_of_the_name_with_sni(
    tls_upstream: RawUpstream, certificate: tuple[Path, Path]
) -> None:
    client = _client(tls_upstream, limit=1, tls=trusting(certificate))
    try:
        assert (await _get(client)).status == 200
    finally:
        await client.aclose()
    assert tls_upstream.server_names == ["localhost"]


async def test_an_untrusted_certificate_is_refused_before_anything_is_sent(
    tls_upstream: RawUpstream, adapters: Callable[..., Any]
) -> None:
    openai = openai_at(tls_upstream, adapters)  # the system's trust store: no self-signed
    with pytest.raises(ConnectFailed, match="CERTIFICATE_VERIFY_FAILED") as caught:
        await openai.create(REQUEST)
    assert caught.value.sent is False
    assert tls_upstream.requests == []


async def test_a_certificate_of_another_name_is_refused(
    tls_upstream: RawUpstream, certificate: tuple[Path, Path]
) -> None:
    address = str(URL(tls_upstream.url).with_host("127.0.0.1"))
    resolver = GuardedResolver(AddressPolicy(address))
    client = ApiClient(address, {}, resolver, limit=1, ssl_context=trusting(certificate))
    try:
        with pytest.raises(NotSent, match="IP address mismatch"):
            await _get(client)
    finally:
        await client.aclose()
    assert tls_upstream.requests == []


async def test_a_key_with_a_line_break_adds_no_header_and_sends_nothing(raw: RawFactory) -> None:
    upstream = await raw()
    openai = OpenAIVideosProvider(
        name="up", base_url=f"{upstream.url}/v1", api_key="sk-1\r\nX-Injected: 1", timeout=5
    )
    try:
        with pytest.raises(ValueError, match="line break"):
            await openai.get("v1")
    finally:
        await openai.aclose()
    assert upstream.requests == []


async def test_a_reply_followed_by_one_nobody_asked_for_is_read_and_its_connection_dropped(
    raw: RawFactory, adapters: Callable[..., Any]
) -> None:
    extra = b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n"
    upstream = await raw(Step((json_reply(QUEUED)[0] + extra,)))
    openai = openai_at(upstream, adapters)
    for _ in range(2):
        assert (await openai.get("v1")).upstream_id == "v1"
    assert [r.connection for r in upstream.requests] == [0, 1]
