"""``sora-proxy serve --workers N``: N worker processes sharing one port, supervised.

The supervisor binds the address once with ``SO_REUSEPORT`` and never listens on it: that
resolves port 0, reports a taken address before any worker starts, and keeps the port while
workers come and go. Each worker is a whole proxy (``python -m router serve ... --reuse-port``)
that binds its own listening socket to the same address; the kernel spreads new connections
over the workers' sockets. Workers share jobs, limits and health through Redis, so ``--workers``
above 1 needs ``store.backend: redis`` (``cli`` refuses otherwise).

Supervision: a worker that exits while the supervisor runs is started again, after a delay
that doubles (up to ``MAX_RESTART_DELAY``) while workers keep dying within ``STABLE_AFTER`` of
their start, so a worker that cannot start does not spin. ``SIGHUP`` is passed to every worker
(each reloads its config file). ``SIGTERM`` or ``SIGINT`` is passed on as ``SIGTERM``: each
worker stops taking connections and drains (``server.shutdown_timeout``); one still running
``DRAIN_GRACE`` seconds after that is killed.

Metrics are per worker, not merged: with ``--metrics-port P`` worker ``i`` also serves
``/metrics`` on ``127.0.0.1:P+i`` (``metrics_listener``), and Prometheus scrapes each worker as
a target (sum across them in PromQL). Merging in one process would need every counter,
histogram and scrape-time collector to go through shared files or a second round of parsing and
re-adding on every scrape, and a merged series hides which worker misbehaves; ``/metrics`` on
the shared port still answers, from whichever worker takes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from router import appkeys as keys

log = logging.getLogger(__name__)

STABLE_AFTER = 10.0  # seconds a worker must live for its exit not to count as a crash loop
MAX_RESTART_DELAY = 5.0  # seconds
DRAIN_GRACE = 5.0  # seconds past shutdown_timeout before a worker is killed


def reserve(host: str, port: int) -> socket.socket:
    """Bind (never listen) the workers' address with ``SO_REUSEPORT``; raises ``OSError``
    when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(slots=True)
class Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    delay: float = 0.0  # before the next restart


class Supervisor:
    """Starts, restarts, signals and stops the workers."""

    def __init__(
        self,
        command: Callable[[int], Sequence[str]],
        count: int,
        drain: float,
        grace: float = DRAIN_GRACE,
    ) -> None:
        """``command(i)`` is worker ``i``'s command line; a worker may take ``drain`` plus
        ``grace`` seconds to stop after SIGTERM."""
        self._command = command
        self._workers = [Worker(i) for i in range(count)]
        self._drain = drain + grace
        self._stopping = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None]

    async def serve(self) -> int:
        """``run`` with the process's signals: SIGTERM and SIGINT stop, SIGHUP is passed on."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop)
        loop.add_signal_handler(signal.SIGINT, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self.pass_on, signal.SIGHUP)
        return await self.run()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> int:
        """Keep the workers running until ``stop``; then stop them all. The exit code: 0."""
        loop = asyncio.get_running_loop()
        watchers = [loop.create_task(self._keep(w)) for w in self._workers]
        await self._stopping.wait()
        log.info("supervisor: stopping %d workers", len(self._workers))
        self.pass_on(signal.SIGTERM)
        await asyncio.gather(*(self._stop(w) for w in self._workers))
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        return 0

    async def _keep(self, worker: Worker) -> None:
        """Run ``worker``, and run it again whenever it exits, until the supervisor stops."""
        while not self._stopping.is_set():
            worker.started = time.monotonic()
            worker.process = await asyncio.create_subprocess_exec(*self._command(worker.index))
            log.info("supervisor: worker %d started (pid %d)", worker.index, worker.process.pid)
            code = await worker.process.wait()
            if self._stopping.is_set():
                return
            lived = time.monotonic() - worker.started
            worker.delay = (
                0.0 if lived >= STABLE_AFTER else min(max(worker.delay * 2, 0.1), MAX_RESTART_DELAY)
            )
            log.warning(
                "supervisor: worker %d (pid %d) exited with %s; starting it again in %.1fs",
                worker.index,
                worker.process.pid,
                code,
                worker.delay,
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(worker.delay):
                    await self._stopping.wait()

    def pass_on(self, number: int) -> None:
        """Send signal ``number`` to every running worker."""
        for worker in self._workers:
            process = worker.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(number)

    async def _stop(self, worker: Worker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        try:
            async with asyncio.timeout(self._drain):
                await process.wait()
        except TimeoutError:
            log.warning("supervisor: worker %d did not drain in time; killing it", worker.index)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def worker_command(argv: Sequence[str], host: str, port: int) -> Callable[[int], list[str]]:
    """Worker ``i``'s command: this ``serve`` command line (``argv``, without ``--workers``),
    on the reserved address, with its own metrics port when one is given."""

    def command(index: int) -> list[str]:
        args = [*argv, "--host", host, "--port", str(port), "--reuse-port"]
        return [sys.executable, "-m", "router", *args, "--worker-index", str(index)]

    return command


def metrics_listener(port: int) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context serving this worker's ``/metrics`` alone on ``127.0.0.1:port``."""

    async def listening(app: web.Application) -> AsyncIterator[None]:
        async def metrics(request: web.Request) -> web.Response:
            body = app[keys.METRICS].render()
            return web.Response(body=body, content_type="text/plain", charset="utf-8")

        side = web.Application()
        side.router.add_get("/metrics", metrics)
        runner = web.AppRunner(side, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            yield
        finally:
            await runner.cleanup()

    return listening
