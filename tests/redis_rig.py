"""Real Redis for tests: a ``redis-server`` on a free loopback port in a temp dir, or a local
three-master Redis Cluster, started and stopped by PID.

Debian's ``redis-server`` and ``redis-cli`` (``scripts/test`` installs them) do the work; nothing
here fakes Redis. A server listens on 127.0.0.1 only, keeps its files in its own directory and
writes no RDB snapshots unless asked (``appendonly``, ``appendfsync`` for the durability tests).
Readiness is waited for by asking (``PING``, ``CLUSTER INFO``), never by sleeping.

The fixtures in ``tests/conftest.py`` wrap these: ``redis_server`` (a fresh server per test),
``redis_cluster`` (one cluster per session, flushed before each test that takes
``redis_cluster_url``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

START_WITHIN = 10.0  # seconds a server or the cluster gets to come up
STOP_WITHIN = 10.0  # seconds a server gets to exit after SIGTERM before SIGKILL


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS's pick for an ephemeral bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ask(port: int, *words: str, timeout: float = 2.0) -> str:
    """One command through ``redis-cli`` against 127.0.0.1:``port``; its printed answer."""
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *words],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done.stdout.strip()


def wait_until(condition: str, check: Callable[[], bool], within: float = START_WITHIN) -> None:
    """Call ``check`` until it holds (errors from a server still starting count as no)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if check():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"redis rig: {condition} not met within {within}s")
        time.sleep(0.01)


@dataclass
class RedisServer:
    """One ``redis-server`` process; ``start`` again after ``kill`` reuses its port and files."""

    directory: Path
    port: int = field(default_factory=free_port)
    options: tuple[str, ...] = ()  # more ``--name value`` pairs, e.g. cluster or AOF settings
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self) -> None:
        """Start the server and return once it answers ``PING``."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--save", "",  # no RDB snapshots: tests that want durability ask for AOF
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.directory / "redis.log"),
            *self.options,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def answers() -> bool:
            if self.process is not None and self.process.poll() is not None:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise AssertionError(f"redis-server exited at start:\n{log}")
            return ask(self.port, "PING", timeout=1.0) == "PONG"

        wait_until(f"redis-server on port {self.port} answering", answers)

    def kill(self) -> None:
        """``kill -9``: no shutdown save, no goodbye (what a crash or an OOM kill does)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(STOP_WITHIN)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Safe to call twice."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_WITHIN)


def start_server(directory: Path, *options: str) -> RedisServer:
    """A started server in ``directory`` (the caller stops it, in a ``finally``)."""
    server = RedisServer(directory, options=options)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def _cluster_ok(port: int) -> bool:
    return "cluster_state:ok" in ask(port, "CLUSTER", "INFO")


def _cluster_port() -> tuple[str, str]:
    # Redis 7 lets the bus port be named; the default (port + 10000) may be taken
    return ("--cluster-port", str(free_port()))


@dataclass
class RedisCluster:
    """Three masters, no replicas, all 16384 slots assigned; ``url`` names one of them."""

    servers: list[RedisServer]

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def flush(self) -> None:
        """Empty every master (each holds its own slots' keys)."""
        for server in self.servers:
            assert ask(server.port, "FLUSHALL") == "OK"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def start_cluster(directory: Path, masters: int = 3) -> RedisCluster:
    """Start ``masters`` cluster-enabled servers and join them with ``redis-cli --cluster
    create``; return once every node reports ``cluster_state:ok``."""
    cluster = RedisCluster([])
    try:
        for number in range(masters):
            options = (
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
                *_cluster_port(),
            )  # fmt: skip
            cluster.servers.append(start_server(directory / f"node{number}", *options))
        nodes = [f"127.0.0.1:{port}" for port in cluster.ports]
        create = ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0"]
        subprocess.run(
            [*create, "--cluster-yes"],
            capture_output=True,
            timeout=START_WITHIN,
            check=True,
        )
        for port in cluster.ports:
            wait_until(f"cluster node {port} ok", functools.partial(_cluster_ok, port))
    except BaseException:
        cluster.stop()
        raise
    return cluster
