"""The command line an operator meets first (issue 16): ``--version``, logging options after
the command, the JSON log format of a real serving process, and a taken port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import aiohttp
import orjson

from tests.proxy_process import ROOT, start_proxy_process

SHIPPED = ROOT / "config.yaml"


def sora_proxy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


def test_version_prints_the_package_version() -> None:
    done = sora_proxy("--version")
    assert (done.returncode, done.stdout) == (0, f"sora-proxy {version('sora-api-proxy')}\n")


def test_logging_options_go_before_or_after_the_command() -> None:
    for args in (
        ("--log-level", "debug", "check", "--config", str(SHIPPED)),
        ("check", "--log-level", "debug", "--log-format", "json", "--config", str(SHIPPED)),
    ):
        done = sora_proxy(*args)
        assert done.returncode == 0, done.stderr
        assert "ok (2 providers" in done.stdout
    refused = sora_proxy("check", "--log-format", "xml")
    assert refused.returncode == 2 and "--log-format" in refused.stderr


def test_a_taken_port_is_one_line_and_exit_3_before_anything_starts(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shutil.copy(SHIPPED, config)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = sora_proxy("serve", "--config", str(config), "--port", str(port))
    assert done.returncode == 3
    assert done.stderr == (
        f"sora-proxy: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
    assert "simulated upstream" not in done.stderr
    assert not (tmp_path / "data").exists()  # the store was never opened


async def test_a_serving_process_logs_json_lines_with_the_request_id(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    shutil.copy(SHIPPED, config)
    log = tmp_path / "proxy.log"
    args = ("--log-level", "info", "--log-format", "json", "--access-log")
    proxy = await start_proxy_process(config, log=log, args=args)
    try:
        async with aiohttp.ClientSession(base_url=proxy.url) as http:
            headers = {"Authorization": "Bearer sk-local-demo", "X-Request-Id": "cli-1"}
            body = {"prompt": "a red kite over the sea", "seconds": "4"}
            async with http.post("/v1/videos", json=body, headers=headers) as response:
                assert response.status == 200
                job_id = (await response.json())["id"]
    finally:
        assert await proxy.stop() == 0
    lines = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    of_request = [line for line in lines if line.get("request_id") == "cli-1"]
    assert [line["logger"] for line in of_request] == [
        "sora_proxy.jobs", "sora_proxy.jobs", "sora_proxy.access",
    ]  # fmt: skip
    routed, created, access = of_request
    assert routed["job_id"] == created["job_id"] == job_id
    assert routed["provider"] == created["provider"]
    assert "balanced: " in routed["message"]
    assert (access["message"], access["status"]) == ("POST /v1/videos", 200)
