"""The processes of one benchmark phase: upstream simulators, the proxy, the floor server.

The proxy runs exactly as deployed (``python -m router serve --config FILE``) from a config
written here: one catalogue model per scenario, each served by exactly one provider of kind
``openai`` pointing at its own simulator process, so a scenario's requests reach the
simulator tuned for it (render time, file size) and the floor can reach the very same one.
Simulators are out of process (not ``kind: simulator``, which would run them on the proxy's
core and event loop) and each has its own port and key. ``Stack`` stops everything it started.
"""

from __future__ import annotations

import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import orjson
import yaml

from bench.client import wait_answering
from bench.floor_servers import READY_PATH
from bench.process import CLIENT_CORE, SERVER_CORE, PinnedProcess
from bench.upstream import STATS_PATH

__all__ = ["LIMITED_KEY", "POLL_AFTER_MS", "Route", "Server", "Stack", "Upstream", "new_key"]

ROOT = Path(__file__).resolve().parent.parent
POLL_AFTER_MS = 1000
_UPSTREAM_KEY = "sk-bench-upstream"
# A key's every limit, each far above what one bench run sends (a few thousand creates a
# second for seconds, every render held for the hour the bench polls it): the checks run on
# every create and never refuse one.
LIMITED_KEY = {"rpm": 10_000_000, "max_concurrent": 10_000_000, "daily_budget_usd": 1e9}


def new_key() -> str:
    """A client key for one benchmark run, the only one its proxy and floor accept."""
    return "sk-bench-" + secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Server:
    """A server under test: its process (for CPU and RSS) and its root URL."""

    process: PinnedProcess
    url: str


@dataclass(frozen=True, slots=True)
class Upstream:
    process: PinnedProcess
    root: str  # http://127.0.0.1:PORT; the API is under /v1
    key: str = field(default=_UPSTREAM_KEY, repr=False)

    @property
    def api(self) -> str:
        return f"{self.root}/v1"

    async def stats(self) -> dict[str, int]:
        """The simulator's request counters (``SimulatorStats``) and its job count."""
        async with aiohttp.ClientSession() as session, session.get(self.root + STATS_PATH) as r:
            counts: dict[str, int] = orjson.loads(await r.read())
            return counts


@dataclass(frozen=True, slots=True)
class Route:
    """A catalogue model of the bench config, served by one upstream only."""

    model: str
    upstream: Upstream
    poll_interval: float  # the provider's, seconds


class Stack:
    """Starts pinned processes for one phase; ``async with`` stops them all at the end."""

    def __init__(self, workdir: Path, key: str) -> None:
        self.workdir = workdir
        self.key = key
        self._processes: list[PinnedProcess] = []

    async def __aenter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for process in reversed(self._processes):
            process.stop()

    async def upstream(self, name: str, *, render_seconds: float, video_bytes: int) -> Upstream:
        port = _free_port()
        argv = [
            sys.executable, "-m", "bench.upstream", "--port", str(port), "--api-key",
            _UPSTREAM_KEY, "--render-seconds", str(render_seconds), "--video-bytes",
            str(video_bytes),
        ]  # fmt: skip
        upstream = Upstream(self._start(name, CLIENT_CORE, argv), f"http://127.0.0.1:{port}")
        await wait_answering(upstream.root + STATS_PATH)
        return upstream

    async def proxy(
        self, name: str, routes: list[Route], root: Path = ROOT, limited_key: str | None = None
    ) -> Server:
        """The proxy on ``routes``, run from the checkout at ``root`` (this one by default).

        A model named by several routes gets one provider per route, ordered by the default
        strategy (balanced). ``limited_key``, when given, is a second client key with every
        limit set (``LIMITED_KEY``) high enough never to refuse the bench's traffic, so its
        creates pay for the checks without being turned away.
        """
        port = _free_port()
        config = self.workdir / f"{name}.yaml"
        store = self.workdir / f"{name}.db"
        document = _proxy_config(port, self.key, store, routes, limited_key)
        config.write_text(yaml.safe_dump(document))
        argv = [
            sys.executable, "-m", "router", "--log-level", "warning", "serve", "--config",
            str(config),
        ]  # fmt: skip
        server = Server(self._start(name, SERVER_CORE, argv, root), f"http://127.0.0.1:{port}")
        await wait_answering(server.url + "/readyz")
        return server

    async def floor(self, upstream: Upstream, videos: dict[str, Any]) -> Server:
        """The floor server in front of ``upstream``, serving ``videos`` (id -> Video object)."""
        port = _free_port()
        videos_file = self.workdir / "floor-videos.json"
        videos_file.write_bytes(orjson.dumps(videos))
        argv = [
            sys.executable, "-m", "bench.floor_servers", "--port", str(port), "--key", self.key,
            "--upstream", upstream.api, "--upstream-key", upstream.key, "--videos",
            str(videos_file), "--poll-after-ms", str(POLL_AFTER_MS),
        ]  # fmt: skip
        server = Server(self._start("floor", SERVER_CORE, argv), f"http://127.0.0.1:{port}")
        await wait_answering(server.url + READY_PATH)
        return server

    def _start(self, name: str, core: int, argv: list[str], root: Path = ROOT) -> PinnedProcess:
        process = PinnedProcess(name, core, argv, self.workdir / f"{name}.log", cwd=root)
        self._processes.append(process)
        return process


def _proxy_config(
    port: int, key: str, store: Path, routes: list[Route], limited_key: str | None
) -> dict[str, Any]:
    keys: list[dict[str, Any]] = [{"name": "bench", "key": key}]
    if limited_key is not None:
        keys.append({"name": "bench-limited", "key": limited_key, **LIMITED_KEY})
    return {
        "server": {"host": "127.0.0.1", "port": port, "poll_after_ms": POLL_AFTER_MS},
        "store": {"path": str(store)},
        "keys": keys,
        "models": {r.model: {"sizes": ["720x1280"], "seconds": [4]} for r in routes},
        "routing": {"strategy": "balanced"},
        "providers": [
            {
                "name": f"up-{index}-{r.model}",
                "kind": "openai",
                "base_url": r.upstream.api,
                "api_key": r.upstream.key,
                "models": {r.model: {"price_per_second": 0.1}},
                "poll_interval": r.poll_interval,
                "timeout": 60,
            }
            for index, r in enumerate(routes)
        ],
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
