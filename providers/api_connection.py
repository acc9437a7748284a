"""``ApiConnection``: one keep-alive HTTP/1.1 connection of ``providers.api_client``, and
how it reads a reply.

It writes a request and parses the reply as bytes arrive, with ``httptools`` (llhttp, the
parser uvicorn uses), holding the reply to its limits while it does: a body up to ``cap``
(past it a reply below 300 is ``ReplyTooLong``, any other is cut there and the connection
dropped), headers up to ``MAX_HEAD``, framing and trailers within bounds. A body framed by
Content-Length, chunked, or delimited by the close is read; interim replies (1xx) are
skipped. One exchange at a time: bytes nobody asked for make it unusable. It never decides
about the pool or a retry (``ApiClient`` does) and never raises from a parser callback: a
failure is set on the exchange's future and the connection closed.
"""

from __future__ import annotations

import asyncio
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser
from multidict import CIMultiDict, CIMultiDictProxy

MAX_HEAD = 64 * 1024  # bytes of status line, headers (interim replies too) and trailers
_NO_BODY = frozenset({204, 304})


class Broken(Exception):
    """The connection failed, or the reply was not HTTP, after the request went out."""


class ReplyTooLong(Exception):
    """A reply below 300 longer than the cap (its status is ``status``)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class Reply:
    """A status, the raw headers and the body (cut at the cap unless below 300)."""

    __slots__ = ("_raw", "body", "status")

    def __init__(self, status: int, raw: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self._raw = raw
        self.body = body

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        """The headers, built when asked (only refusals need them)."""
        pairs = ((k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw)
        return CIMultiDictProxy(CIMultiDict(pairs))


class ApiConnection(asyncio.Protocol):
    """One keep-alive connection; it carries one exchange at a time (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Reply] | None = None
        self._begin(0)

    def _begin(self, cap: int) -> None:
        self._cap = cap
        self._status = 0
        self._raw: list[tuple[bytes, bytes]] = []
        self._parts: list[bytes] = []
        self._size = 0
        self._wire = 0  # bytes received for this exchange
        self._trailers = 0  # bytes of headers after the body
        self._headers_done = False
        self._length: bytes | None = None  # Content-Length as sent
        self._chunked = False  # a Transfer-Encoding was sent
        self._until_eof = False
        self._reusable = False
        self.answered = False  # a byte of the reply arrived

    # -- the caller's side --------------------------------------------------------------

    def exchange(self, request: bytes, cap: int) -> asyncio.Future[Reply]:
        self._begin(cap)
        self._waiter = waiter = self._loop.create_future()
        if not self.usable:  # closed between the pool's look and now
            waiter.set_exception(Broken("the connection closed before the request went out"))
            return waiter
        assert self.transport is not None
        self.transport.write(request)
        return waiter

    @property
    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    @property
    def reusable(self) -> bool:
        return self._reusable and self.usable

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not registered as asyncio.Transport: no isinstance here
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for (a 408 before a close): unusable
            return
        self.answered = True
        self._wire += len(data)
        try:
            self._parser.feed_data(data)
        except (HttpParserError, HttpParserUpgrade) as exc:
            self._fail(Broken(f"not an HTTP reply: {type(exc).__name__}"))
            return
        if self._waiter.done():
            return
        # Bytes fed and still no headers: they were all head (interim replies included). The
        # wire limit bounds what a reply may send besides its body (framing, trailers).
        if not self._headers_done and self._wire > MAX_HEAD:
            self._fail(Broken(f"reply headers longer than {MAX_HEAD} bytes"))
        elif self._wire > MAX_HEAD + 4 * self._cap:
            self._fail(Broken("reply framing longer than its body could need"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._until_eof:  # a body delimited by the close, and this is its end
            self._finish(reusable=False)
        else:
            self._fail(Broken("the connection closed before the reply ended"))

    # -- httptools' callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is not None and self._waiter.done():
            self._reusable = False  # a second reply nobody asked for

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._headers_done:  # a trailer: counted, never kept
            self._trailers += len(name) + len(value)
            if self._trailers > MAX_HEAD and self._waiter and not self._waiter.done():
                self._fail(Broken(f"reply trailers longer than {MAX_HEAD} bytes"))
            return
        self._raw.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length":
            self._length = value
        elif lowered == b"transfer-encoding":
            self._chunked = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200 or self._waiter is None or self._waiter.done():
            return  # interim (100, 103): the reply proper follows; or nobody waits
        self._status = status
        self._headers_done = True
        length = self._length
        self._until_eof = length is None and not self._chunked and status not in _NO_BODY
        if status < 300 and length is not None and length.isdigit() and int(length) > self._cap:
            self._fail(ReplyTooLong(status))

    def on_body(self, body: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            return
        room = self._cap - self._size
        if len(body) <= room:
            self._parts.append(body)
            self._size += len(body)
        elif self._status < 300:
            self._fail(ReplyTooLong(self._status))
        else:
            self._parts.append(body[:room])
            self._size += room
            self._finish(reusable=False)  # the rest is never read: the connection goes

    def on_message_complete(self) -> None:
        if not self._headers_done:
            self._raw = []  # an interim reply's headers are not the reply's
            self._length, self._chunked = None, False
            return
        if self._waiter is not None and not self._waiter.done():
            self._finish(reusable=self._parser.should_keep_alive())

    # -- helpers ------------------------------------------------------------------------

    def _finish(self, *, reusable: bool) -> None:
        assert self._waiter is not None
        self._reusable = reusable
        self._waiter.set_result(Reply(self._status, self._raw, b"".join(self._parts)))
        self._raw = []  # the reply's own; anything parsed after it goes elsewhere
        if not reusable:
            self.close()

    def _fail(self, exc: Exception) -> None:
        # Never raises: a parser callback that raised would turn into a parser error.
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()
