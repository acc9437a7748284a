"""A client over a raw socket: sends bytes no SDK would, reads the answer as it comes.

For requests an HTTP library refuses to build (headers that are not UTF-8, broken multipart,
bad chunk sizes, a body cut off mid-way). Each call opens one connection and closes it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower case
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def is_envelope(self) -> bool:
        """The OpenAI error envelope, as JSON."""
        if not self.headers.get("content-type", "").startswith("application/json"):
            return False
        error = self.json().get("error")
        return isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)


def request_bytes(
    method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    """A request as bytes: ``headers`` go out exactly as given (add Content-Length yourself)."""
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: test", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def send_raw(url: str, data: bytes) -> RawAnswer:
    """Send ``data`` and read the whole answer (the server closes: ``Connection: close``)."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return parse_answer(raw)


def parse_answer(raw: bytes) -> RawAnswer:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return RawAnswer(status=status, headers=headers, body=body)


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
