"""The command line and the shipped config (issue 2, point 3): what the README says to run."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import aiohttp
import openai
import pytest
import yaml

from router.cli import main, with_listen_overrides
from router.config.load import load_config, parse_config
from tests.proxy_process import start_proxy_process

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.yaml"


def test_shipped_config_is_valid_and_runs_on_simulators() -> None:
    config = load_config(SHIPPED, env={})
    assert {p.kind for p in config.providers} == {"simulator"}
    assert len(config.providers) >= 2
    assert len({p.models["sora-2"].price_per_second for p in config.providers}) > 1
    assert config.server.host == "127.0.0.1"
    assert [k.name for k in config.keys] == ["local-demo"]


def test_check_accepts_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(SHIPPED)]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_lists_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "keys: [{name: a, key: k}]\n"
        "providers:\n"
        "  - {name: p, kind: carrier-pigeon, models: {sora-2: {price_per_second: 0.1}}}\n"
        "  - {name: q, kind: openai, base_url: 'http://x/v1',"
        " models: {sora-2: {price_per_second: -1}}}\n"
        "routing: {strategy: luck}\n"
    )
    assert main(["check", "--config", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "providers[0].kind" in err
    assert "providers[1].models.sora-2.price_per_second" in err
    assert "routing.strategy" in err


async def test_readme_run_command_serves_a_first_render(tmp_path: Path) -> None:
    """``sora-proxy serve --config config.yaml``, then the README's SDK snippet, unchanged."""
    config = tmp_path / "config.yaml"
    shutil.copy(SHIPPED, config)  # its store path is relative to the config file: lands in tmp
    proxy = await start_proxy_process(config)
    client = openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key="sk-local-demo")
    try:
        video = await client.videos.create_and_poll(
            prompt="a paper boat on a rainy street", model="sora-2", seconds="4", size="1280x720"
        )
        assert video.status == "completed"
        content = await client.videos.download_content(video.id)
        assert content.content[4:8] == b"ftyp"
    finally:
        await client.close()
        assert await proxy.stop() == 0  # SIGTERM is a clean shutdown
    assert (tmp_path / "data" / "sora-proxy.db").exists()


def test_port_override_moves_a_public_url_that_named_the_old_address() -> None:
    config = load_config(SHIPPED, env={})
    moved = with_listen_overrides(config, None, 9123)
    assert (moved.server.port, moved.server.public_url) == (9123, "http://127.0.0.1:9123")
    custom = replace(config, server=replace(config.server, public_url="https://videos.example"))
    kept = with_listen_overrides(custom, "0.0.0.0", 9123)
    assert (kept.server.host, kept.server.public_url) == ("0.0.0.0", "https://videos.example")


def hash_key(stdin: str) -> subprocess.CompletedProcess[str]:
    """``sora-proxy hash-key`` as a real process, the key piped to its stdin."""
    return subprocess.run(
        [sys.executable, "-m", "router", "hash-key"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


async def test_hash_key_output_as_key_sha256_authenticates_that_key(tmp_path: Path) -> None:
    """The printed digest, used as ``key_sha256``, lets the key in; the key is never printed."""
    secret = "sk-hash-key-check-7f3a"
    done = hash_key(secret + "\n")
    assert (done.returncode, done.stderr) == (0, "")
    digest = done.stdout.strip()
    assert done.stdout == digest + "\n" and secret not in done.stdout
    assert digest == hashlib.sha256(secret.encode()).hexdigest()  # lower-case hex
    plain = parse_config({"keys": [{"name": "k", "key": secret}], "providers": [SIM_ENTRY]}, env={})
    assert plain.keys[0].key_sha256 == digest  # what config makes of a plain ``key``

    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"path": str(tmp_path / "jobs.db")},
                "keys": [{"name": "hashed", "key_sha256": digest}],
                "providers": [SIM_ENTRY],
            }
        )
    )
    proxy = await start_proxy_process(config)
    try:
        async with aiohttp.ClientSession(base_url=proxy.url) as http:
            for key, status in ((secret, 200), (digest, 401), (secret + "x", 401)):
                headers = {"Authorization": f"Bearer {key}"}
                async with http.get("/v1/videos", headers=headers) as response:
                    assert response.status == status, key
    finally:
        assert await proxy.stop() == 0


SIM_ENTRY = {
    "name": "sim",
    "kind": "simulator",
    "models": {"sora-2": {"price_per_second": 0.1}},
    "simulate": {"render_seconds": 0.3},
}


def test_hash_key_strips_only_the_line_end_and_reads_one_line() -> None:
    for stdin in ("sk-a\n", "sk-a\r\n", "sk-a", "sk-a\nsecond line\n"):
        done = hash_key(stdin)
        assert done.returncode == 0, stdin
        assert done.stdout.strip() == hashlib.sha256(b"sk-a").hexdigest(), stdin


@pytest.mark.parametrize("stdin", ["", "\n", " sk-a\n", "sk-a \n"])
def test_hash_key_refuses_an_empty_or_padded_key_with_exit_2(stdin: str) -> None:
    """Empty, or with whitespace the proxy would strip from the Bearer token (never matches)."""
    done = hash_key(stdin)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("hash-key: ")


def test_hash_key_takes_no_key_argument() -> None:
    """A key on the command line would show in ``ps`` and shell history."""
    done = subprocess.run(
        [sys.executable, "-m", "router", "hash-key", "--key", "sk-a"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_hash_key_prompts_without_echo_on_a_terminal() -> None:
    """On a TTY the key is read with getpass: a prompt on stderr, the typed key not echoed."""
    import pty

    master, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "router", "hash-key"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,  # no controlling terminal: getpass uses stdin, the pty
    )
    os.close(terminal)
    try:
        assert process.stderr is not None
        prompt = b""
        while b": " not in prompt:  # written after echo is off; typing earlier would be flushed
            chunk = os.read(process.stderr.fileno(), 256)
            assert chunk, "hash-key exited before prompting"
            prompt += chunk
        os.write(master, b"sk-typed\n")
        out, _ = process.communicate(timeout=30)
        echoed = b""
        while True:  # what the terminal showed; EIO once the process side is closed
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            echoed += chunk
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert out.decode().strip() == hashlib.sha256(b"sk-typed").hexdigest()
    assert b"sk-typed" not in echoed
