"""``router.runtime.supervisor``, in this process over real child processes: a dead worker is
started again (after a growing delay when it keeps dying at once), signals reach every worker,
and a stop drains each, killing one that will not go. Workers here are small Python scripts
that log what happens to them, so each step is waited for, never slept through."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import ClientSession, web

from router.app import create_app
from router.runtime.supervisor import Supervisor, metrics_listener, reserve, worker_command
from tests.conftest import build_config, sim_provider, wait_for
from tests.proxy_process import free_port

WORKER = """
import os, pathlib, signal, sys, time
log = pathlib.Path(sys.argv[1])
def note(what):
    with log.open("a") as out:
        out.write(f"{os.getpid()} {what}\\n")
def on(number, frame):
    note(number)
    if number == signal.SIGTERM and sys.argv[2] == "obeys":
        sys.exit(0)
signal.signal(signal.SIGHUP, on)
signal.signal(signal.SIGTERM, on)
note("started")
while True:
    time.sleep(0.1)
"""


def lines(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [
        (int(pid), what)
        for pid, what in (row.split() for row in log.read_text().split("\n") if row)
    ]


def running_pid(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def scripted(log: Path) -> Callable[[int], list[str]]:
    def command(index: int) -> list[str]:
        return [sys.executable, "-c", WORKER, str(log), "obeys" if index == 0 else "stays"]

    return command


async def test_workers_are_restarted_signalled_and_stopped(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    supervisor = Supervisor(scripted(log), 2, drain=0.2, grace=0.2)
    running = asyncio.create_task(supervisor.run())

    def started() -> list[int]:
        return [pid for pid, what in lines(log) if what == "started"]

    async def both_started() -> bool:
        return len(started()) == 2

    await wait_for(both_started)
    victim = started()[0]
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        return len(started()) == 3 and victim not in supervisor.pids

    await wait_for(replaced)
    live = set(supervisor.pids)
    supervisor.pass_on(signal.SIGHUP)

    async def both_hung_up() -> bool:
        return {pid for pid, what in lines(log) if what == str(int(signal.SIGHUP))} == live

    await wait_for(both_hung_up)
    supervisor.stop()
    async with asyncio.timeout(10):
        assert await running == 0
    # Both were asked to stop; the one that stays was killed after drain + grace.
    asked = {pid for pid, what in lines(log) if what == str(int(signal.SIGTERM))}
    assert asked == live
    assert not any(map(running_pid, live))


async def test_a_worker_that_keeps_dying_is_restarted_ever_more_slowly(tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    script = "import os, sys; open(sys.argv[1], 'a').write(f'{os.getpid()} started\\n')"
    supervisor = Supervisor(lambda _: [sys.executable, "-c", script, str(log)], 1, drain=1.0)
    running = asyncio.create_task(supervisor.run())

    async def restarted() -> bool:
        return len(lines(log)) >= 3

    await wait_for(restarted)
    supervisor.stop()  # while it waits to start the worker again
    async with asyncio.timeout(10):
        assert await running == 0


def test_the_address_is_reserved_once_and_shared_by_the_workers() -> None:
    first = reserve("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        second = reserve("127.0.0.1", port)  # SO_REUSEPORT: siblings may bind it too
        second.close()
        command = worker_command(["serve", "--config", "c.yaml"], "127.0.0.1", port)(1)
        assert command == [
            sys.executable,
            *("-m", "router", "serve", "--config", "c.yaml", "--host", "127.0.0.1"),
            *("--port", str(port), "--reuse-port", "--worker-index", "1"),
        ]
    finally:
        first.close()


async def test_a_worker_serves_its_own_metrics_on_its_metrics_port(tmp_path: Path) -> None:
    port = free_port()
    app = create_app(build_config(tmp_path, [sim_provider("a")]))
    app.cleanup_ctx.append(metrics_listener(port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        async with ClientSession() as session, session.get(url) as response:
            body = await response.text()
        assert response.status == 200
        assert "# TYPE sora_proxy_" in body
    finally:
        await runner.cleanup()
