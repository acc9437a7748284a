"""The proxy as a real operating-system process (``python -m router serve``), for the tests
that need to kill it or to run exactly what the README says."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now (False while nothing listens there yet)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200
    except aiohttp.ClientConnectionError:
        return False


async def start_processes(
    directory: Path, docs: list[dict[str, Any]], ports: list[int], started: list[ProxyProcess]
) -> None:
    """One proxy process per config document, on ``ports``, each logging to its own file,
    appended to ``started`` (the caller stops them, in a ``finally``) and ready to serve."""
    for index, (doc, port) in enumerate(zip(docs, ports, strict=True)):
        config = directory / f"config-{index}.yaml"
        config.write_text(yaml.safe_dump(doc))
        started.append(ProxyProcess(config, port, directory / f"proxy-{index}.log"))
    for proxy in started:
        await proxy.ready(within=90)


class ProxyProcess:
    def __init__(
        self, config: Path, port: int, log: Path | None = None, args: Sequence[str] = ()
    ) -> None:
        """``log``: a file that receives the proxy's log (warnings and errors); else dropped.
        ``args`` go after ``serve``'s own (e.g. ``--log-level info --log-format json``)."""
        self.url = f"http://127.0.0.1:{port}"
        sink = log.open("ab") if log is not None else None
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "router",
                    "--log-level",
                    "warning",
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(port),
                    *args,
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL if sink is None else sink,
            )
        finally:
            if sink is not None:
                sink.close()

    async def ready(self, within: float = 20.0) -> None:
        async def answering() -> bool:
            assert self.process.poll() is None, "the proxy exited"
            try:
                async with aiohttp.ClientSession() as s, s.get(f"{self.url}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(answering, within=within)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def kill_9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    async def stop(self) -> int:
        """SIGTERM, as an orchestrator would; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 15)


async def start_proxy_process(
    config: Path, port: int | None = None, log: Path | None = None, args: Sequence[str] = ()
) -> ProxyProcess:
    proxy = ProxyProcess(config, port or free_port(), log, args)
    await proxy.ready()
    return proxy
