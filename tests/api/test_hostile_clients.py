"""Bad input from a client is a 4xx in the OpenAI envelope, never a 5xx (issue 15, point 9),
and a JSON create sent the way ``curl -d`` sends it is accepted (point 12).

Requests go over a raw socket (``tests.raw_client``): most of these bytes no HTTP library
would send. Each case also checks that nothing was stored and nothing logged at ERROR.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from router import appkeys as keys
from tests.conftest import ALICE, ProxyFactory, RunningProxy, local_store, sim_provider, wait_for
from tests.raw_client import RawAnswer, request_bytes, send_raw

AUTH = (b"Authorization", f"Bearer {ALICE}".encode())
ADMIN = "adm-clients-0b6c"
MULTIPART = b"multipart/form-data; boundary=XB"


@pytest.fixture
async def proxy(proxy_factory: ProxyFactory) -> RunningProxy:
    return await proxy_factory(
        [sim_provider("sim-a", render_seconds=30)], server={"admin_key": ADMIN}
    )


def part(name: bytes, value: bytes, extra: bytes = b"") -> bytes:
    return (
        (b'--XB\r\nContent-Disposition: form-data; name="' + name + b'"\r\n' + extra + b"\r\n")
        + value
        + b"\r\n"
    )


PROMPT = part(b"prompt", b"a kite")
END = b"--XB--\r\n"

# (Content-Type, body): every one a malformed or unreadable create body.
BAD_BODIES = {
    "multipart without a boundary": (b"multipart/form-data", PROMPT + END),
    "multipart that is not multipart": (MULTIPART, b"garbage, no boundary at all"),
    "multipart cut off": (MULTIPART, b'--XB\r\nContent-Disposition: form-data; name="prompt"'),
    "a part without Content-Disposition": (MULTIPART, b"--XB\r\n\r\nx\r\n" + END),
    "a part without a name": (
        MULTIPART,
        b"--XB\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + END,
    ),
    "a field name that is not UTF-8": (MULTIPART, PROMPT + part(b"\xff\xfe", b"x") + END),
    "a field value that is not UTF-8": (MULTIPART, part(b"prompt", b"\xff\xfe\xfd") + END),
    "a part in an unknown charset": (
        MULTIPART,
        part(b"prompt", b"x", b"Content-Type: text/plain; charset=no-such-charset\r\n") + END,
    ),
    "a part in an unknown transfer encoding": (
        MULTIPART,
        part(b"prompt", b"x", b"Content-Transfer-Encoding: rot13\r\n") + END,
    ),
    "a nested multipart": (
        MULTIPART,
        part(b"prompt", b"--YB--\r\n", b"Content-Type: multipart/mixed; boundary=YB\r\n") + END,
    ),
    "a file field that is not UTF-8 named": (
        MULTIPART,
        PROMPT
        + b'--XB\r\nContent-Disposition: form-data; name="input_reference"; filename="\xff.png"'
        + b"\r\nContent-Type: image/png\r\n\r\nPNG\r\n"
        + END,
    ),
    "a form with an undecodable escape": (b"application/x-www-form-urlencoded", b"prompt=%ff%fe"),
    "a form with raw bytes that are not UTF-8": (
        b"application/x-www-form-urlencoded",
        b"prompt=\xff\xfe",
    ),
    "a form in an unknown charset": (
        b"application/x-www-form-urlencoded; charset=no-such-charset",
        b"prompt=x",
    ),
    "JSON that is not JSON": (b"application/json", b'{"prompt": '),
    "JSON in an unknown charset": (b"application/json; charset=no-such-charset", b"{}"),
}


async def create(proxy: RunningProxy, content_type: bytes | None, body: bytes) -> RawAnswer:
    headers = [AUTH, (b"Content-Length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"Content-Type", content_type))
    return await send_raw(proxy.url, request_bytes("POST", "/v1/videos", headers, body))


def assert_refused(answer: RawAnswer, proxy: RunningProxy) -> None:
    assert 400 <= answer.status < 500, answer
    assert answer.is_envelope(), answer
    assert len(local_store(proxy.app)) == 0


@pytest.mark.parametrize("case", list(BAD_BODIES))
async def test_a_malformed_create_body_is_a_400_envelope(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    content_type, body = BAD_BODIES[case]
    answer = await create(proxy, content_type, body)
    assert_refused(answer, proxy)
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    "path", ["/v1/videos", "/v2/videos/generations/x", "/admin/providers", "/v1/nowhere"]
)
async def test_an_authorization_header_that_is_not_utf8_is_a_401(
    proxy: RunningProxy, path: str
) -> None:
    for value in (b"Bearer \xff\xfe\xfd", b"\xc3\x28", b"Bearer sk-\xe2\x82"):
        data = request_bytes("GET", path, [(b"Authorization", value)])
        answer = await send_raw(proxy.url, data)
        assert answer.status == 401, answer
        assert answer.is_envelope(), answer


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=0", 200),
        ("limit=%C2%B2", 400),  # superscript two
        ("limit=%D9%A4", 400),  # Arabic-Indic four
        ("limit=%EF%BC%94", 400),  # fullwidth four
        ("limit=" + "9" * 5000, 400),
        ("limit=-1", 400),
    ],
)
async def test_list_limits(proxy: RunningProxy, query: str, status: int) -> None:
    answer = await send_raw(proxy.url, request_bytes("GET", f"/v1/videos?{query}", [AUTH]))
    assert answer.status == status, answer
    if status == 200:
        assert answer.json()["data"] == [] and answer.json()["has_more"] is False
    else:
        assert answer.is_envelope()


@pytest.mark.parametrize(
    "value", ["\u00b2", "\u0664", "\uff14", "4" + "0" * 5000, " 4 ", "+4", "4.0"]
)
@pytest.mark.parametrize(
    ("path", "field"), [("/v1/videos", "seconds"), ("/v2/videos/generations", "duration")]
)
async def test_numbers_are_ascii_digits_of_a_sane_length(
    proxy: RunningProxy, path: str, field: str, value: str
) -> None:
    body = f'{{"prompt": "a kite", "{field}": "{value}"}}'.encode()
    headers = [
        AUTH,
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(body)).encode()),
    ]
    answer = await send_raw(proxy.url, request_bytes("POST", path, headers, body))
    assert_refused(answer, proxy)
    assert answer.json()["error"]["param"] == field


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ([(b"Content-Encoding", b"br-unknown"), (b"Content-Length", b"2")], b"{}"),
        ([(b"Content-Encoding", b"gzip"), (b"Content-Length", b"8")], b"not gzip"),
    ],
    ids=["unknown encoding", "gzip that is not"],
)
async def test_a_body_in_a_broken_encoding_is_a_4xx_envelope(
    proxy: RunningProxy, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    data = request_bytes(
        "POST", "/v1/videos", [AUTH, (b"Content-Type", b"application/json"), *headers], body
    )
    answer = await send_raw(proxy.url, data)
    assert 400 <= answer.status < 500, answer
    assert answer.is_envelope(), answer
    assert len(local_store(proxy.app)) == 0


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n"],
    ids=["a chunk size that is not hex", "a chunk too long"],
)
async def test_broken_chunked_framing_is_a_400(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    """aiohttp's HTTP parser answers framing errors itself, before any handler of ours runs,
    so this 400 is plain text (README, "Security model"); it is never a 5xx, and the log gets
    one WARNING line, no ERROR and no traceback."""
    headers = [AUTH, (b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked")]
    answer = await send_raw(proxy.url, request_bytes("POST", "/v1/videos", headers, body))
    assert answer.status == 400, answer
    assert len(local_store(proxy.app)) == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert all(r.exc_info is None for r in caplog.records)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/no/such%0Apath"),
        ("POST", "/v1/videos%0A"),
        ("OPTIONS", "/v1/videos/video_1%0A2"),
        ("HEAD", "/%0A"),
        ("OPTIONS", "*"),
    ],
)
async def test_a_target_no_route_takes_is_answered_in_the_envelope(
    proxy: RunningProxy, method: str, path: str
) -> None:
    """The property test's open finding: the catch-all route's ``.*`` stopped at a line break,
    so a path with ``%0A`` that no fixed route takes reached no route at all and aiohttp
    answered its own plain-text 404 (or 405); and no route pattern can take the request target
    ``*`` (``OPTIONS *``), which does not start with a slash."""
    answer = await send_raw(proxy.url, request_bytes(method, path, [AUTH]))
    assert answer.status in (404, 405), answer
    assert answer.headers["content-type"].startswith("application/json"), answer
    if method != "HEAD":  # a HEAD answer has no body
        assert answer.is_envelope()


async def test_a_client_hanging_up_mid_upload_is_no_error(
    proxy: RunningProxy, caplog: pytest.LogCaptureFixture
) -> None:
    head = request_bytes(
        "POST",
        "/v1/videos",
        [AUTH, (b"Content-Type", MULTIPART), (b"Content-Length", b"1000000")],
        PROMPT,
    )
    _, writer = await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))
    writer.write(head)
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    def counted(status: str) -> float:
        value = proxy.app[keys.METRICS].registry.get_sample_value(
            "sora_proxy_requests_total", {"route": "/v1/videos", "status": status}
        )
        return value or 0.0

    async def answered() -> bool:
        return counted("499") + counted("500") + counted("400") >= 1

    await wait_for(answered)
    assert counted("500") == 0
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert len(local_store(proxy.app)) == 0


@pytest.mark.parametrize("content_type", [b"application/x-www-form-urlencoded", None])
async def test_a_json_create_sent_as_curl_d_sends_it_is_accepted(
    proxy: RunningProxy, content_type: bytes | None
) -> None:
    """Point 12: ``curl -d '{...}'`` labels the body urlencoded; other tools send no type."""
    answer = await create(proxy, content_type, b'{"prompt": "a kite", "seconds": "4"}')
    assert answer.status == 200, answer
    assert answer.json()["status"] in ("queued", "in_progress")
    assert len(local_store(proxy.app)) == 1
