"""An upstream faked at the byte level over loopback, for what an HTTP server library will not
do on purpose: replies cut into pieces, chunked or delimited by the close, malformed, too long,
a connection closed while idle or right after a request, a request held until the caller
hangs up. It records every request and which connection carried it.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Literal

import orjson

# What the server does after its answer: read the next request, close, or wait for the
# caller to hang up (it answers nothing more).
After = Literal["keep", "close", "hold"]


@dataclass(frozen=True)
class Step:
    """The answer to one request: ``pieces`` written one by one, then ``after``."""

    pieces: tuple[bytes, ...] = ()
    after: After = "keep"


@dataclass(frozen=True)
class RawRequest:
    connection: int  # the number of the connection it came on, from 0
    head: bytes
    body: bytes

    @property
    def line(self) -> bytes:
        return self.head.split(b"\r\n", 1)[0]


def json_reply(
    payload: object,
    *,
    status: int = 200,
    headers: bytes = b"",
    chunks: int = 0,
    framing: Literal["length", "chunked", "close"] = "length",
) -> tuple[bytes, ...]:
    """A JSON reply's bytes, its body cut into ``chunks`` pieces when chunked."""
    body = orjson.dumps(payload)
    head = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n" % status + headers
    if framing == "length":
        return (head + b"Content-Length: %d\r\n\r\n" % len(body) + body,)
    if framing == "close":
        return (head + b"Connection: close\r\n\r\n", body)
    size = max(1, -(-len(body) // max(chunks, 1)))
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    encoded = [b"%x\r\n%s\r\n" % (len(p), p) for p in parts]
    return (head + b"Transfer-Encoding: chunked\r\n\r\n", *encoded, b"0\r\n\r\n")


@dataclass
class RawUpstream:
    """Answers requests in order with ``steps`` (then ``default``); see the module docstring."""

    steps: list[Step] = field(default_factory=list)
    default: Step = field(
        default_factory=lambda: Step(json_reply({"id": "v1", "status": "queued"}))
    )
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0  # accepted so far
    open: int = 0  # open now
    most_open: int = 0
    url: str = ""
    tls: ssl.SSLContext | None = None  # serve https (``url`` then names ``name``)
    name: str = "127.0.0.1"
    server_names: list[str | None] = field(default_factory=list)  # asked for by TLS (SNI)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self) -> None:
        if self.tls is not None:
            self.tls.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://{self.name}:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in self._writers:
                writer.close()
            # each handler sees its connection end and returns (a handler cancelled at loop
            # close would log an error)
            for _ in range(1000):
                if not self.open:
                    break
                await asyncio.sleep(0.005)
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                body = await reader.readexactly(_length(head))
                self.requests.append(RawRequest(number, head, body))
                step = self.steps.pop(0) if self.steps else self.default
                for piece in step.pieces:
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0)  # let the caller read this piece alone
                if step.after == "close":
                    return
                if step.after == "hold":
                    await reader.read()  # until the caller hangs up
                    return
        except ConnectionError:
            return
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
