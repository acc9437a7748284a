"""The command line and the shipped config (issue 2, point 3): what the README says to run."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import openai
import pytest

from router.cli import main, with_listen_overrides
from router.config import load_config
from tests.proxy_process import start_proxy_process

ROOT = Path(__file__).resolve().parent.parent
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
