"""At most ``server.max_connections`` open client connections (issue 15, point 10).

aiohttp gives an app no hook on accepted connections: the event loop asks a protocol factory
(aiohttp's ``web.Server``) for a protocol per accepted connection. ``ConnectionCap`` stands in
front of that factory: below the cap it hands out aiohttp's own handler; at the cap the new
connection gets a protocol that closes it at once, counted in
``sora_proxy_connections_refused_total``. So a flood of connections cannot use up the
process's file descriptors (at ``EMFILE`` the loop stops accepting anything, ``/healthz``
included): connections already open (requests in flight, keep-alive health checks) go on, and
idle ones are closed after ``server.header_timeout``, which makes room again.

``CappedSite`` is aiohttp's ``SockSite`` serving through the cap; ``serve`` runs an app on a
listening socket until SIGINT or SIGTERM, as ``web.run_app`` does (which builds its own site).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import Callable

from aiohttp import web

__all__ = ["CappedSite", "ConnectionCap", "connection_limit", "serve"]

UNLIMITED_FILES = 65536  # open files assumed when the process's limit is unlimited


def connection_limit(configured: int) -> int:
    """``server.max_connections``, or (0) half the process's open-file limit: the other half is
    for upstream connections, the store, Redis and the asset files."""
    if configured:
        return configured
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft
    return max(files // 2, 1)


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed as soon as it is made, before a byte is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class ConnectionCap:
    """aiohttp's protocol factory, refusing connections past ``limit`` open ones."""

    __slots__ = ("_limit", "_refused", "_server")

    def __init__(self, server: web.Server, limit: int, refused: Callable[[], None]) -> None:
        self._server = server
        self._limit = limit
        self._refused = refused

    def __call__(self) -> asyncio.BaseProtocol:
        # ``connections`` is a fresh list of the open ones: one per accepted connection, never
        # per request
        if len(self._server.connections) < self._limit:
            return self._server()
        self._refused()
        return _Refused()


class CappedSite(web.SockSite):
    """``web.SockSite`` whose connections go through a ``ConnectionCap``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        *,
        limit: int,
        refused: Callable[[], None],
    ) -> None:
        super().__init__(runner, sock)
        self._limit = limit
        self._on_refused = refused

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        cap = ConnectionCap(server, self._limit, self._on_refused)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(cap, sock=self._sock, backlog=self._backlog)


def serve(
    app: web.Application,
    sock: socket.socket,
    *,
    limit: int,
    refused: Callable[[], None],
    shutdown_timeout: float,
) -> None:
    """Serve ``app`` on the listening ``sock`` through the cap until SIGINT or SIGTERM, then
    stop taking connections and drain for up to ``shutdown_timeout`` seconds (as
    ``web.run_app`` does: its signal handlers, its shutdown)."""
    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(_serve(app, sock, limit, refused, shutdown_timeout))


async def _serve(
    app: web.Application,
    sock: socket.socket,
    limit: int,
    refused: Callable[[], None],
    shutdown_timeout: float,
) -> None:
    runner = web.AppRunner(
        app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    try:
        await CappedSite(runner, sock, limit=limit, refused=refused).start()
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()
