"""At most ``server.max_connections`` open client connections (issue 15, point 10).

aiohttp gives an app no hook on accepted connections: the event loop asks a protocol factory
(aiohttp's ``web.Server``) for a protocol per accepted connection. ``ConnectionCap`` stands in
front of that factory: below the cap it hands out aiohttp's own handler. At the cap it makes
room by closing the longest-open idle connection (one waiting for its next request's headers,
as a flood of idle or trickling connections is), counted in
``sora_proxy_connections_evicted_total``, and serves the new one: so a health check on a new
connection is answered under a flood, whose own connections are the ones closed. Only when no
idle connection is found among the oldest ``EVICTION_SCAN`` (all busy with requests) is the new
connection closed at once, counted in ``sora_proxy_connections_refused_total``. Either way a
flood cannot use up the process's file descriptors (at ``EMFILE`` the loop stops accepting
anything, ``/healthz`` included), and requests in flight go on.

The idle test reads two attributes of aiohttp's ``RequestHandler`` (``_waiter``,
``_request_in_progress``), the same test aiohttp's own keep-alive timer makes
(``_process_keepalive``); ``tests/api/test_slow_clients.py`` fails if an aiohttp release
changes them.

``CappedSite`` is aiohttp's ``SockSite`` serving through the cap; ``serve`` runs an app on a
listening socket until SIGINT or SIGTERM, as ``web.run_app`` does (which builds its own site).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from monitoring.metrics import Metrics

__all__ = ["CappedSite", "ConnectionCap", "connection_limit", "is_idle", "serve"]

UNLIMITED_FILES = 65536  # open files assumed when the process's limit is unlimited
EVICTION_SCAN = 256  # oldest connections looked at for an idle one, per accept at the cap


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


def is_idle(handler: RequestHandler) -> bool:
    """Waiting for a request's headers (none sent yet, or some but not all), no request being
    handled: what aiohttp's keep-alive timer closes."""
    waiter = handler._waiter
    return waiter is not None and not waiter.done() and not handler._request_in_progress


class ConnectionCap:
    """aiohttp's protocol factory; at ``limit`` open connections it closes the oldest idle one
    to serve a new one, or refuses the new one when none is idle."""

    __slots__ = ("_limit", "_metrics", "_open", "_server")

    def __init__(self, server: web.Server, limit: int, metrics: Metrics) -> None:
        self._server = server
        # aiohttp's own record of the open connections, in the order they were accepted (its
        # public ``connections`` copies it into a list on every call)
        self._open = server._connections
        self._limit = limit
        self._metrics = metrics

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._open) < self._limit or self._evict_one():
            return self._server()
        self._metrics.connection_refused()
        return _Refused()

    def _evict_one(self) -> bool:
        """Close the longest-open idle connection among the oldest ``EVICTION_SCAN``; False
        when none is idle. A closed one leaves ``_open`` on the loop's next turn; until then
        it no longer counts as idle, so a burst of accepts closes one connection each."""
        for scanned, handler in enumerate(self._open):
            if scanned == EVICTION_SCAN:
                return False
            if is_idle(handler):
                handler.force_close()
                self._metrics.connection_evicted()
                return True
        return False


class CappedSite(web.SockSite):
    """``web.SockSite`` whose connections go through a ``ConnectionCap``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        *,
        limit: int,
        metrics: Metrics,
    ) -> None:
        super().__init__(runner, sock)
        self._limit = limit
        self._metrics = metrics

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        cap = ConnectionCap(server, self._limit, self._metrics)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(cap, sock=self._sock, backlog=self._backlog)


def serve(
    app: web.Application,
    sock: socket.socket,
    *,
    limit: int,
    metrics: Metrics,
    shutdown_timeout: float,
) -> None:
    """Serve ``app`` on the listening ``sock`` through the cap until SIGINT or SIGTERM, then
    stop taking connections and drain for up to ``shutdown_timeout`` seconds (as
    ``web.run_app`` does: its signal handlers, its shutdown)."""

    async def serving() -> None:
        runner = web.AppRunner(
            app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout
        )
        await runner.setup()
        try:
            await CappedSite(runner, sock, limit=limit, metrics=metrics).start()
            await asyncio.Event().wait()  # until a signal raises GracefulExit
        finally:
            await runner.cleanup()

    with contextlib.suppress(web.GracefulExit, KeyboardInterrupt):
        asyncio.run(serving())
