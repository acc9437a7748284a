"""A client that drops a download mid-way is no failure of the proxy's: nothing is logged as
one, and the proxy goes on serving.

A client that stops reading fills the socket, and the proxy's writer waits for it to drain.
If the client then resets the connection, aiohttp fails that wait with a plain
``ConnectionError`` (not the ``ConnectionResetError`` a write to a closed transport raises),
which the content routes took for an error of their own: an ERROR line with a traceback for
every abandoned download.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import pytest
from aiohttp.web_protocol import RequestHandler

from tests.conftest import (
    ALICE,
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    finished_job,
    upstream_provider,
    wait_for,
)

VIDEO_BYTES = 24 << 20  # more than loopback's socket buffers hold, so the writer must wait


async def test_a_download_reset_while_the_proxy_waits_to_write_logs_no_error(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Streamed from the upstream. (The asset store's local files go out by sendfile, which
    reports a client gone as a reset already; its other backends write as this route does and
    take the same ``ConnectionError``.)"""
    sim = await simulators(video_bytes=VIDEO_BYTES)
    proxy = await proxy_factory([upstream_provider("up", "openai", sim)], assets={"copy": False})
    client = proxy.client()
    video = await client.videos.create(prompt="a long take")
    await finished_job(proxy, video.id)

    await _drop_mid_download(proxy, f"/v1/videos/{video.id}/content")

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    again = await client.videos.retrieve(video.id)  # and it goes on serving
    assert again.status == "completed"


async def _drop_mid_download(proxy: RunningProxy, path: str) -> None:
    """Start ``path``, read the head, stop reading until the proxy waits to write, then reset."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = proxy.url.removeprefix("http://").split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ALICE}\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    server = proxy.runner.server
    assert server is not None

    waiting: list[RequestHandler] = []

    async def proxy_waits() -> bool:
        waiting.extend(handler for handler in server.connections if handler.writing_paused)
        return bool(waiting)

    await wait_for(proxy_waits)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with linger 0: a reset, as a killed client sends

    async def gone() -> bool:  # the SDK client's own connection stays open
        return waiting[0] not in server.connections

    await wait_for(gone)
