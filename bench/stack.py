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
from bench.upstream import SEED_PATH, STATS_PATH

__all__ = [
    "LIMITED_KEY",
    "POLL_AFTER_MS",
    "Route",
    "Server",
    "Stack",
    "Upstream",
    "free_port",
    "new_key",
]

ROOT = Path(__file__).resolve().parent.parent
POLL_AFTER_MS = 1000
_UPSTREAM_KEY = "sk-bench-upstream"
_SEED_CHUNK = 50_000  # renders per seed request: ~0.5 s of the simulator's loop each
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

    async def seed(self, indices: range, model: str) -> int:
        """Add the renders of seeded jobs ``indices`` (``bench.seed``); the job count after."""
        async with aiohttp.ClientSession() as session:
            for start in range(indices.start, indices.stop, _SEED_CHUNK):
                count = min(_SEED_CHUNK, indices.stop - start)
                query = {"start": str(start), "count": str(count), "model": model}
                async with session.post(self.root + SEED_PATH, params=query) as reply:
                    reply.raise_for_status()
                    jobs = int(orjson.loads(await reply.read())["jobs"])
        return jobs

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
        port = free_port()
        argv = [
            sys.executable, "-m", "bench.upstream", "--port", str(port), "--api-key",
            _UPSTREAM_KEY, "--render-seconds", str(render_seconds), "--video-bytes",
            str(video_bytes),
        ]  # fmt: skip
        upstream = Upstream(self._start(name, CLIENT_CORE, argv), f"http://127.0.0.1:{port}")
        await wait_answering(upstream.root + STATS_PATH)
        return upstream

    async def proxy(
        self,
        name: str,
        routes: list[Route],
        root: Path = ROOT,
        limited_key: str | None = None,
        *,
        redis_url: str | None = None,
        workers: int = 1,
        provider: dict[str, Any] | None = None,
        stored: bool | None = None,
    ) -> Server:
        """The proxy on ``routes``, run from the checkout at ``root`` (this one by default).

        A model named by several routes gets one provider per route, ordered by the default
        strategy (balanced). ``limited_key``, when given, is a second client key with every
        limit set (``LIMITED_KEY``) high enough never to refuse the bench's traffic, so its
        creates pay for the checks without being turned away. ``redis_url`` puts it on the
        redis backend (``store.backend: redis``, with the link secret that needs);
        ``workers`` above 1 runs ``serve --workers N``, whose supervisor is the process
        measured (``PinnedProcess.cpu_seconds`` adds its workers). ``provider`` adds settings
        to every provider (``poll_rpm``, for one). ``stored`` True: finished videos are copied
        into the asset store (``assets_dir(name)``) and served from there; False: no copies,
        content streams from the upstream (the path the pass-through floor is compared with);
        None: the config has no ``assets`` section (revisions before the asset store, in
        ``bench.ab``), the deployed default.
        """
        port = free_port()
        config = self.workdir / f"{name}.yaml"
        store = self.workdir / f"{name}.db"
        document = _proxy_config(port, self.key, store, routes, limited_key, provider or {})
        if redis_url is not None:
            document["store"] |= {"backend": "redis", "url": redis_url}
            document["server"]["link_secret"] = secrets.token_hex(32)
        if stored is not None:
            document["assets"] = {"copy": stored, "path": str(self.assets_dir(name))}
        config.write_text(yaml.safe_dump(document))
        argv = [
            sys.executable, "-m", "router", "--log-level", "warning", "serve", "--config",
            str(config),
        ]  # fmt: skip
        metrics = _free_ports_in_a_row(workers) if workers > 1 else None
        if metrics is not None:
            argv += ["--workers", str(workers), "--metrics-port", str(metrics)]
        server = Server(self._start(name, SERVER_CORE, argv, root), f"http://127.0.0.1:{port}")
        if metrics is not None:  # every worker up, not just the one that takes /readyz
            for index in range(workers):
                await wait_answering(f"http://127.0.0.1:{metrics + index}/metrics", within=60)
        await wait_answering(server.url + "/readyz")
        return server

    def assets_dir(self, proxy: str) -> Path:
        """Where the proxy named ``proxy`` keeps its copies of finished videos."""
        return self.workdir / f"{proxy}-assets"

    async def floor(
        self,
        upstream: Upstream,
        videos: dict[str, Any],
        *,
        name: str = "floor",
        files: Path | None = None,
    ) -> Server:
        """The floor server in front of ``upstream``, serving ``videos`` (id -> Video object)
        and, when given, the files under ``files`` by aiohttp's ``FileResponse``."""
        port = free_port()
        videos_file = self.workdir / f"{name}-videos.json"
        videos_file.write_bytes(orjson.dumps(videos))
        argv = [
            sys.executable, "-m", "bench.floor_servers", "--port", str(port), "--key", self.key,
            "--upstream", upstream.api, "--upstream-key", upstream.key, "--videos",
            str(videos_file), "--poll-after-ms", str(POLL_AFTER_MS),
        ]  # fmt: skip
        if files is not None:
            argv += ["--files", str(files)]
        server = Server(self._start(name, SERVER_CORE, argv), f"http://127.0.0.1:{port}")
        await wait_answering(server.url + READY_PATH)
        return server

    def _start(self, name: str, core: int, argv: list[str], root: Path = ROOT) -> PinnedProcess:
        process = PinnedProcess(name, core, argv, self.workdir / f"{name}.log", cwd=root)
        self._processes.append(process)
        return process


def _proxy_config(
    port: int,
    key: str,
    store: Path,
    routes: list[Route],
    limited_key: str | None,
    provider: dict[str, Any],
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
                **provider,
            }
            for index, r in enumerate(routes)
        ],
    }


def _free_ports_in_a_row(count: int) -> int:
    """The first of ``count`` consecutive loopback ports that are free right now."""
    for _ in range(100):
        first = free_port()
        if all(_bindable(first + offset) for offset in range(1, count)):
            return first
    raise RuntimeError(f"no {count} free loopback ports in a row")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
