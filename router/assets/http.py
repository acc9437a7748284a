"""Serving a stored object over HTTP: one ``Range``, ``ETag`` and the conditional headers.

``plan`` is the pure decision (status, byte span, headers) from the request's headers, the
object's size and its ETag (the SHA-256 recorded when it was copied, so every instance and
backend names the same bytes alike). Then ``send`` writes the body: from a local file by the
kernel's sendfile on the client's socket (``router.assets.sendfile``), else (an object store,
a TLS connection) streamed from the backend in chunks. Either way memory stays flat with the
file's size.

Rules (RFC 9110): ``If-None-Match`` matching the ETag (weak comparison, or ``*``) is a 304; a
single ``bytes=`` range is a 206 with ``Content-Range``, one that starts past the end (or a
zero-length suffix) is a 416 with ``Content-Range: bytes */size``; a malformed or multi-range
``Range`` is ignored (200, the whole object), as is any ``Range`` whose ``If-Range`` is not
exactly our ETag.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from router.assets.base import AssetStore
from router.assets.sendfile import kernel_socket, send_range

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(slots=True)
class Plan:
    """What to answer: ``status``, and for 200/206 the span ``start`` .. ``stop`` to send."""

    status: int
    start: int = 0
    stop: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class Unsatisfiable(Exception):
    """A well-formed range that selects nothing of the object: a 416."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` for a satisfiable single range; None when the header is malformed or
    names several ranges (then it is ignored); ``Unsatisfiable`` when it selects nothing."""
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(size - suffix, 0), size
    start = int(first)
    stop = size if not last else int(last) + 1
    if last and stop <= start:
        return None  # last-byte-pos before first-byte-pos: invalid, so ignored
    if start >= size:
        raise Unsatisfiable
    return start, min(stop, size)


def plan(headers: Mapping[str, str], size: int, etag: str) -> Plan:
    """Decide the answer to a GET of an object of ``size`` bytes whose ETag is ``etag``."""
    quoted = f'"{etag}"'
    common = {"ETag": quoted, "Accept-Ranges": "bytes"}
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None and _matches(if_none_match, quoted):
        return Plan(304, headers=common)
    range_header = headers.get("Range")
    if_range = headers.get("If-Range")
    if range_header is None or (if_range is not None and if_range.strip() != quoted):
        return Plan(200, 0, size, common)
    try:
        span = parse_range(range_header, size)
    except Unsatisfiable:
        return Plan(416, headers={**common, "Content-Range": f"bytes */{size}"})
    if span is None:
        return Plan(200, 0, size, common)
    start, stop = span
    return Plan(206, start, stop, {**common, "Content-Range": f"bytes {start}-{stop - 1}/{size}"})


def _matches(if_none_match: str, quoted: str) -> bool:
    """Weak comparison: ``W/"x"`` matches ``"x"``; ``*`` matches anything that exists."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == quoted:
            return True
    return False


async def send(
    request: web.Request,
    store: AssetStore,
    key: str,
    answer: Plan,
    content_type: str,
    stamp: Callable[[web.Request, web.StreamResponse], None],
) -> web.StreamResponse:
    """Answer ``request`` as ``answer`` says, the body read from ``store``'s object ``key``;
    ``stamp`` adds the headers every answer carries, before they are sent."""
    response = web.StreamResponse(status=answer.status, headers=answer.headers)
    stamp(request, response)
    if answer.status not in (200, 206):
        if answer.status == 416:
            response.content_length = 0
        await response.prepare(request)
        await response.write_eof()
        return response
    response.content_type = content_type
    # our origin serves it: a browser must neither sniff it into a page nor guess (as upstream
    # pass-through does, providers.http)
    extension = mimetypes.guess_extension(content_type) or ""
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = (
        f'inline; filename="{content_type.split("/", 1)[0]}{extension}"'
    )
    count = answer.stop - answer.start
    response.content_length = count
    await response.prepare(request)
    if request.method == "HEAD" or count == 0:
        await response.write_eof()
        return response
    try:
        if not response.compression and await _sent_by_kernel(request, store, key, answer):
            await response.write_eof()
            return response
        async for chunk in store.read(key, answer.start, answer.stop):
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        if not client_hung_up(request):
            raise
    return response


def client_hung_up(request: web.BaseRequest) -> bool:
    """After an error while a request's body is read or its download sent (a reset, or the
    connection lost while waiting for it to drain): True when the client's own connection is
    gone. Clients hang up, and then there is no failure of ours to log and nothing left to
    answer; False means the error came from elsewhere (an upstream breaking off, a malformed
    body) and is answered or raised as such."""
    transport = request.transport
    return transport is None or transport.is_closing()


async def _sent_by_kernel(request: web.Request, store: AssetStore, key: str, answer: Plan) -> bool:
    """Send the span by ``sendfile(2)`` when the object is a local file and the connection a
    plain socket (``router.assets.sendfile``); False when it cannot, and nothing was sent."""
    path = store.local_path(key)
    transport = request.transport
    if path is None or transport is None:
        return False
    sock = kernel_socket(transport)
    if sock is None:
        return False
    file = path.open("rb")  # one quick syscall; a handle never lost to a cancel
    try:
        await send_range(transport, sock, file, answer.start, answer.stop - answer.start)
    finally:
        file.close()
    return True
