"""The benchmark's Redis: one ``redis-server`` on a free loopback port, and what it counts.

Started on the client core (beside wrk and the simulators), so the proxy's core measures the
proxy alone; its own CPU is read from ``/proc`` like every other process's, and it is stopped
by PID (``PinnedProcess.stop``) with the phase. It keeps nothing on disk (no RDB, no AOF): the
bench measures the proxy's use of Redis, not Redis's durability.

What a request costs Redis is read from ``INFO`` before and after a run (``RedisCounters``):

* round trips: ``total_reads_processed``, the read events the server handled. A command, a
  pipeline or a script call sent at once arrives in one read, so this counts what a client
  waited on, not the commands inside; the bench's own ``INFO`` calls are subtracted.
* commands: the ``calls`` of ``INFO commandstats`` summed, which counts the commands a Lua
  script runs as well as the script call itself: the work Redis did, not the waits.
* scripts: ``eval`` and ``evalsha`` calls, the share of round trips that are atomic steps.

Memory is ``used_memory`` of ``INFO memory`` (what Redis's allocator holds for data and
overhead; RSS would add fragmentation that depends on the allocation history).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.process import CLIENT_CORE, PinnedProcess
from bench.stack import free_port

__all__ = ["RedisCounters", "RedisServer"]

_START_WITHIN = 10.0  # seconds
_SCRIPT_COMMANDS = ("eval", "evalsha", "evalsha_ro", "eval_ro", "fcall")
# the reads of one ``counters`` call itself: INFO stats and INFO commandstats sent as
# one pipeline (one read), so each reading adds this to the next delta
_OWN_READS = 1


@dataclass(frozen=True, slots=True)
class RedisCounters:
    """Redis's running totals at one moment; subtract two for what happened between."""

    reads: int
    commands: int
    scripts: int
    cpu: float  # seconds, the server process's (all threads)
    by_command: dict[str, int]

    def __sub__(self, earlier: RedisCounters) -> RedisCounters:
        names = self.by_command.keys() | earlier.by_command.keys()
        return RedisCounters(
            reads=self.reads - earlier.reads - _OWN_READS,
            commands=self.commands - earlier.commands,
            scripts=self.scripts - earlier.scripts,
            cpu=self.cpu - earlier.cpu,
            by_command={
                n: self.by_command.get(n, 0) - earlier.by_command.get(n, 0) for n in sorted(names)
            },
        )

    def per(self, requests: int) -> dict[str, Any]:
        """Per request, for the JSON (``by_command`` too, so a change shows where it lands)."""
        n = max(requests, 1)
        return {
            "round_trips": round(self.reads / n, 3),
            "commands": round(self.commands / n, 3),
            "scripts": round(self.scripts / n, 3),
            "cpu_us": round(self.cpu / n * 1e6, 2),
            "by_command": {k: round(v / n, 3) for k, v in self.by_command.items() if v},
        }


class RedisServer:
    """``async with RedisServer(workdir) as redis``: a started server, stopped at the end."""

    def __init__(self, workdir: Path, name: str = "redis") -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        directory = workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        argv = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
            str(directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        self._log = workdir / f"{name}.log"
        self.process = PinnedProcess(name, CLIENT_CORE, argv, self._log, cwd=directory)
        self.client = Redis.from_url(self.url, socket_timeout=60)

    async def __aenter__(self) -> RedisServer:
        try:
            await self._wait_answering()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.client.aclose()
        self.process.stop()

    async def counters(self) -> RedisCounters:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.info("stats")
            pipe.info("commandstats")
            stats, commandstats = cast(list[dict[str, Any]], await pipe.execute())
        by_command = {
            name.removeprefix("cmdstat_"): int(fields["calls"])
            for name, fields in commandstats.items()
            if name.removeprefix("cmdstat_") not in ("info", "config|resetstat")
        }
        return RedisCounters(
            reads=int(stats["total_reads_processed"]),
            commands=sum(by_command.values()),
            scripts=sum(by_command.get(n, 0) for n in _SCRIPT_COMMANDS),
            cpu=self.process.cpu_seconds(),
            by_command=by_command,
        )

    async def used_memory(self) -> int:
        """Bytes the server's allocator holds (``INFO memory`` ``used_memory``)."""
        memory = await self.client.info("memory")
        return int(memory["used_memory"])

    async def _wait_answering(self) -> None:
        deadline = asyncio.get_running_loop().time() + _START_WITHIN
        while True:
            if not self.process.alive():
                raise RuntimeError(f"redis-server exited at start; see {self._log}")
            try:
                if await self.client.ping():
                    return
            except (OSError, RedisError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"redis-server: no answer in {_START_WITHIN}s") from exc
            await asyncio.sleep(0.02)
