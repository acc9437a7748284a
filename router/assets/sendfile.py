"""A byte range of a local file sent to a client's connection by the kernel (``sendfile(2)``).

``loop.sendfile`` would do this, but uvloop (the loop the proxy runs on) raises
``NotImplementedError`` for it, and aiohttp's ``FileResponse`` then falls back to reading the
file in 256 KiB pieces on the default executor and writing each through the transport: a thread
hop, a copy into Python and a copy back into the kernel per piece. Measured in
``bench/README.md`` ("Serving from the asset store"), that costs several times the CPU of
letting the kernel move the pages.

``kernel_socket`` says whether a connection can take it: a plain TCP (or Unix) socket, never a
TLS transport (the bytes must be encrypted in user space there), and only while the
transport's own write buffer is empty, so the headers aiohttp already handed it go out first.
``send_range`` then calls ``os.sendfile`` on a duplicate of the socket's descriptor (uvloop and
asyncio refuse ``add_writer`` on a descriptor a transport owns; a duplicate is another entry in
the same epoll set) and, when the socket's buffer is full, waits for it to drain. It runs on
the loop thread, as asyncio's own ``sendfile`` does: a call copies at most one socket buffer
from the page cache and never waits on the network.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import BinaryIO


def kernel_socket(transport: asyncio.Transport) -> socket.socket | None:
    """The connection's socket when the kernel may write to it directly, else None."""
    if transport.get_extra_info("ssl_object") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or transport.get_write_buffer_size():
        return None
    return sock  # type: ignore[no-any-return]


async def send_range(
    transport: asyncio.Transport, sock: socket.socket, file: BinaryIO, start: int, count: int
) -> None:
    """Send ``count`` bytes of ``file`` from ``start`` on ``sock``; nothing else may write to
    the connection meanwhile. A client that hangs up aborts the transport and raises
    ``ConnectionResetError``; a file that ends early raises it with the transport open."""
    loop = asyncio.get_running_loop()
    out = os.dup(sock.fileno())
    offset, end = start, start + count
    try:
        while offset < end:
            if transport.is_closing():
                raise ConnectionResetError("the client has gone")
            try:
                sent = os.sendfile(out, file.fileno(), offset, end - offset)
            except BlockingIOError:
                await _writable(loop, out)
                continue
            except (BrokenPipeError, ConnectionResetError):
                transport.abort()  # the peer is gone: the transport must not linger
                raise ConnectionResetError("the client has gone") from None
            if sent == 0:
                raise ConnectionResetError("the stored file shrank while being sent")
            offset += sent
    finally:
        os.close(out)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Until ``fd`` can take more bytes (or has failed: the next send says how)."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
