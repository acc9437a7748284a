"""Secrets never leak (issue 5): keys and upstream secrets stay out of logs, errors, reprs, metrics.

A proxy runs with every kind of secret it knows: a client key given as plain ``key``, one
given as ``key_sha256``, the admin key, the link secret and upstream API keys (a stand-alone
simulator and a scripted upstream over real HTTP, plus an embedded simulator with its private
key). Traffic then goes through the error paths: unknown keys, client keys on the admin API,
upstreams answering 401 and 500, a render that fails over, both dialects. Everything the
proxy said (every response status, header and body, ``/metrics``, every log record at DEBUG,
reprs of the config and runtime records) is searched for each secret, and for the SHA-256 hex
of each client key, which is as good as the key for a lookup.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from providers.registry import ADAPTERS
from router import appkeys as keys
from router.config.load import load_config, parse_config
from router.config.model import ConfigError
from tests.conftest import (
    ProxyFactory,
    RunningProxy,
    SimulatorFactory,
    sim_provider,
    upstream_provider,
    wait_for,
)
from tests.fake_upstream import ScriptedFactory, ScriptedUpstream
from tests.hostile_upstream import echoes_in_base64, recoverable

ROOT = Path(__file__).resolve().parents[2]

CLIENT_PLAIN = "sk-client-plain-5b1e0c93"
CLIENT_HASHED = "sk-client-hashed-9d27aa41"
ADMIN = "adm-secret-41f7c2d8"
LINK_SECRET = "link-secret-0a6e55f1"
SCRIPTED_KEY = "sk-upstream-scripted-e03b88c4"
SIM_KEY = "sk-upstream-sim-77ac1d02"


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


SECRETS = {
    "client key (plain)": CLIENT_PLAIN,
    "client key (hashed)": CLIENT_HASHED,
    "sha256 of the plain client key": sha256_hex(CLIENT_PLAIN),
    "sha256 of the hashed client key": sha256_hex(CLIENT_HASHED),
    "admin key": ADMIN,
    "link secret": LINK_SECRET,
    "scripted upstream key": SCRIPTED_KEY,
    "simulator upstream key": SIM_KEY,
}


def leaks(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    """Every (secret, place) pair where a secret shows up; empty when nothing leaked."""
    return [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, secret in secrets.items()
        if secret in text
    ]


class Transcript:
    """Every answer the proxy gave: status, headers and body, by request."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.texts: dict[str, str] = {}
        self.session = aiohttp.ClientSession()

    async def call(
        self, method: str, path: str, key: str | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        url = path if path.startswith("http") else self.url + path
        async with self.session.request(method, url, headers=headers, **kwargs) as response:
            body = await response.read()
            place = f"answer #{len(self.texts)} to {method} {path}"
            self.texts[place] = f"{response.status} {dict(response.headers)!r} {body!r}"
            is_json = response.content_type == "application/json"
            return response.status, (await response.json() if is_json else body)


def proxy_config(scripted_url: str, sim: Any) -> dict[str, Any]:
    scripted = {
        "name": "scripted",
        "kind": "openai",
        "base_url": f"{scripted_url}/v1",
        "api_key": SCRIPTED_KEY,
        "models": {"sora-2": {"price_per_second": 0.05}, "sora-2-pro": {"price_per_second": 0.2}},
        "timeout": 5,
        "poll_interval": 0.05,
        "priority": 0,
    }
    return {
        "providers": [
            scripted,
            upstream_provider("sim-upstream", "openai", sim, priority=1),
            {
                **sim_provider("embedded"),
                "models": {"sora-2": {"price_per_second": 0.1}},
                "priority": 2,
            },
        ],
        "keys": [
            {"name": "plain", "key": CLIENT_PLAIN},
            {"name": "hashed", "key_sha256": sha256_hex(CLIENT_HASHED)},
        ],
        "server": {"admin_key": ADMIN, "link_secret": LINK_SECRET},
        "routing": {"strategy": "priority"},
    }


async def test_no_secret_in_answers_logs_metrics_or_reprs(
    proxy_factory: ProxyFactory,
    simulators: SimulatorFactory,
    scripted: ScriptedFactory,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger of every package
    upstream = await scripted()
    unauthorised = {"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}
    upstream.reply("GET", "/v1/videos", unauthorised, status=401)  # the probe fails
    upstream.reply("POST", "/v1/videos", unauthorised, status=401)  # creates fail over
    sim = await simulators(api_key=SIM_KEY)
    config = proxy_config(upstream.url, sim)
    proxy = await proxy_factory(config.pop("providers"), **config)
    embedded = proxy.simulator("embedded").api_key
    secrets = {**SECRETS, "embedded simulator key": embedded}
    http = Transcript(proxy.url)
    try:
        await wait_for(lambda: ready(http))

        # Wrong, missing and malformed client keys; near misses must not be echoed.
        for key in ("sk-wrong", CLIENT_PLAIN + "x", sha256_hex(CLIENT_PLAIN), ADMIN, SIM_KEY):
            assert (await http.call("GET", "/v1/videos", key))[0] == 401
        assert (await http.call("GET", "/v1/videos"))[0] == 401
        assert (await http.call("GET", "/v2/videos/generations/video_x", "x" + CLIENT_HASHED))[
            0
        ] == 401

        # Client keys on the admin API; a wrong admin key; the admin views themselves.
        for key, status in ((CLIENT_PLAIN, 403), (CLIENT_HASHED, 403), (ADMIN + "x", 401)):
            assert (await http.call("GET", "/admin/providers", key))[0] == status

        # A create that fails over from the 401 upstream, then renders; content and listing.
        status, video = await http.call(
            "POST", "/v1/videos", CLIENT_PLAIN, json={"prompt": "a kite", "seconds": "4"}
        )
        assert status == 200, video
        await wait_for(lambda: finished(http, f"/v1/videos/{video['id']}", CLIENT_PLAIN))
        assert (await http.call("GET", f"/v1/videos/{video['id']}/content", CLIENT_PLAIN))[0] == 200
        assert (await http.call("GET", "/v1/videos", CLIENT_PLAIN))[0] == 200
        assert (await http.call("GET", f"/v1/videos/{video['id']}", CLIENT_HASHED))[0] == 404
        assert (await http.call("GET", f"/admin/jobs/{video['id']}", ADMIN))[0] == 200
        assert (await http.call("GET", "/admin/providers", ADMIN))[0] == 200

        # Only the scripted upstream serves sora-2-pro: its 500, then its 401, reach the client.
        upstream.reply("POST", "/v1/videos", {"error": {"message": "boom"}}, status=500)
        pro = {"prompt": "a kite", "model": "sora-2-pro", "seconds": "4"}
        assert (await http.call("POST", "/v1/videos", CLIENT_HASHED, json=pro))[0] == 502
        upstream.reply("POST", "/v1/videos", unauthorised, status=401)
        assert (await http.call("POST", "/v1/videos", CLIENT_HASHED, json=pro))[0] == 502

        # The relay dialect with the hashed key, through to its signed link.
        relay = {"prompt": "a kite", "model": "sora-2", "duration": "4"}
        status, task = await http.call("POST", "/v2/videos/generations", CLIENT_HASHED, json=relay)
        assert status == 200, task
        path = f"/v2/videos/generations/{task['task_id']}"
        await wait_for(lambda: relay_finished(http, path))
        link = (await http.call("GET", path, CLIENT_HASHED))[1]["data"]["output"]
        assert (await http.call("GET", link))[0] == 200
        assert (await http.call("GET", link.replace("sig=", "sig=0")))[0] == 403

        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.call("GET", path))[0] == 200
    finally:
        await http.session.close()

    # The scripted upstream did get its key (so the test would see it if it leaked back).
    assert any(s.headers.get("Authorization") == f"Bearer {SCRIPTED_KEY}" for s in upstream.seen)
    messages = [r.getMessage() for r in caplog.records]
    assert any("create on scripted failed" in m for m in messages)  # logging was captured
    assert any("probe of scripted failed" in m for m in messages)

    app = proxy.app
    config_record = app[keys.CONFIG].current
    keyring = app[keys.KEYRING]
    reprs = {
        "repr(LiveConfig)": repr(app[keys.CONFIG]),
        "repr(Config)": repr(config_record),
        "repr(ServerConfig)": repr(config_record.server),
        "repr(KeyRing)": repr(keyring),
        "repr(LinkSigner)": repr(app[keys.LINKS]),
    }
    for key_config in config_record.keys:
        reprs[f"repr(ClientKeyConfig {key_config.name})"] = repr(key_config)
    for secret in (CLIENT_PLAIN, CLIENT_HASHED):
        client_key = keyring.authenticate(f"Bearer {secret}")
        reprs[f"repr/str(ClientKey {client_key.name})"] = f"{client_key!r} {client_key}"
    for entry in app[keys.POOL]:
        reprs[f"repr(PoolEntry {entry.name})"] = repr(entry)
        reprs[f"repr(ProviderConfig {entry.name})"] = repr(entry.config)
        reprs[f"repr(adapter {entry.name})"] = f"{entry.adapter!r} {entry.adapter}"
    for kind, factory in ADAPTERS.items():
        adapter = factory(
            name=kind, base_url="http://127.0.0.1:9/v1", api_key=SCRIPTED_KEY, timeout=1.0
        )
        reprs[f"repr({kind} adapter)"] = f"{adapter!r} {adapter}"
    texts = {
        **http.texts,
        **reprs,
        "the log": caplog.text,
        "log records (message and arguments)": "\n".join(
            f"{r.getMessage()} {r.args!r}" for r in caplog.records
        ),
        "metrics": app[keys.METRICS].render().decode(),
        "the job store": await asyncio.to_thread(read_store, tmp_path),
    }
    assert leaks(texts, secrets) == []


def read_store(directory: Path) -> str:
    """The job store's files as they are on disk, WAL included."""
    return "".join(p.read_bytes().decode("latin-1") for p in directory.glob("jobs.db*"))


async def ready(http: Transcript) -> bool:
    return (await http.call("GET", "/readyz"))[0] == 200


async def finished(http: Transcript, path: str, key: str) -> bool:
    return str((await http.call("GET", path, key))[1]["status"]) in ("completed", "failed")


async def relay_finished(http: Transcript, path: str) -> bool:
    return str((await http.call("GET", path, CLIENT_HASHED))[1]["status"]) in (
        "SUCCESS",
        "FAILURE",
    )


def secret_config() -> dict[str, Any]:
    """A config holding every secret in the places a person would put them."""
    return {
        "server": {"admin_key": ADMIN, "link_secret": LINK_SECRET},
        "keys": [
            {"name": "plain", "key": CLIENT_PLAIN},
            {"name": "hashed", "key_sha256": sha256_hex(CLIENT_HASHED)},
        ],
        "providers": [
            {
                "name": "up",
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": SCRIPTED_KEY,
                "models": {"sora-2": {"price_per_second": 0.1}},
            }
        ],
    }


def broken_configs() -> dict[str, dict[str, Any]]:
    """Mistakes made next to secrets, or with a secret in the wrong field."""
    base = secret_config()
    provider = base["providers"][0]
    return {
        "both key and key_sha256": {
            **base,
            "keys": [{"name": "k", "key": CLIENT_PLAIN, "key_sha256": sha256_hex(CLIENT_PLAIN)}],
        },
        "the secret given as key_sha256": {
            **base,
            "keys": [{"name": "k", "key_sha256": CLIENT_HASHED}],
        },
        "one secret twice": {
            **base,
            "keys": [
                {"name": "a", "key": CLIENT_PLAIN},
                {"name": "b", "key_sha256": sha256_hex(CLIENT_PLAIN)},
            ],
        },
        "a secret where a number goes": {
            **base,
            "providers": [{**provider, "timeout": SCRIPTED_KEY, "rpm": SIM_KEY}],
        },
        "a key in the URL": {
            **base,
            "providers": [{**provider, "base_url": f"ftp://user:{SCRIPTED_KEY}@example.com"}],
        },
        "a secret as a kind": {**base, "providers": [{**provider, "kind": SCRIPTED_KEY}]},
        "a non-string secret": {**base, "server": {"admin_key": ["x", ADMIN]}},
    }


def error_texts(exc: ConfigError) -> str:
    """What a caller may show of a config error: message, repr and a full traceback."""
    return "\n".join([str(exc), repr(exc), *exc.problems, *traceback.format_exception(exc)])


@pytest.mark.parametrize("case", list(broken_configs()))
def test_config_errors_never_repeat_a_secret(case: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(broken_configs()[case], env={})
    assert leaks({case: error_texts(caught.value)}, SECRETS) == []


BAD_YAML = f"""\
server:
  admin_key: {ADMIN}
keys:
  - {{name: plain, key: "{CLIENT_PLAIN}}}
providers:
  - {{name: up, kind: openai, api_key: {SCRIPTED_KEY}
"""


def test_a_yaml_error_on_a_secrets_line_never_repeats_it(tmp_path: Path) -> None:
    """The parser's own message, with the line number; not the document's text."""
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "line" in str(caught.value)
    assert leaks({"yaml error": error_texts(caught.value)}, SECRETS) == []


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", "--log-level", "debug", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )


def test_sora_proxy_check_prints_no_secret(tmp_path: Path) -> None:
    """On a bad file (invalid YAML, or every mistake above at once) and on a good one."""
    texts: dict[str, str] = {}
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text(BAD_YAML)
    bad = tmp_path / "problems.yaml"
    merged = secret_config()
    merged["keys"] = [
        {"name": "a", "key": CLIENT_PLAIN, "key_sha256": sha256_hex(CLIENT_PLAIN)},
        {"name": "b", "key_sha256": CLIENT_HASHED},
    ]
    merged["server"] = {"admin_key": [ADMIN], "link_secret": 7}
    merged["providers"][0]["base_url"] = f"ftp://user:{SCRIPTED_KEY}@example.com"
    bad.write_text(yaml.safe_dump(merged))
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(secret_config()))
    for path, code in ((bad_yaml, 1), (bad, 1), (good, 0)):
        done = check(path)
        assert done.returncode == code, done.stderr
        texts[f"check {path.name}"] = done.stdout + done.stderr
    assert "problem(s)" in texts["check problems.yaml"]
    assert leaks(texts, SECRETS) == []


async def test_an_upstream_that_echoes_our_key_does_not_make_us_repeat_it(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Its words are scrubbed at the boundary: not in the probe's log line, not in a 400."""
    caplog.set_level(logging.DEBUG)
    upstream = await scripted()
    echo = {"error": {"message": f"Incorrect API key provided: {SCRIPTED_KEY}"}}
    upstream.reply("GET", "/v1/videos", echo, status=401)
    upstream.reply("POST", "/v1/videos", {**echo, "param": "prompt"}, status=400)
    proxy = await echoing_proxy(proxy_factory, upstream)
    http = Transcript(proxy.url)
    try:
        assert (await http.call("POST", "/v1/videos", CLIENT_PLAIN, json={"prompt": "x"}))[0] == 400
    finally:
        await http.session.close()
    assert any("probe of echoing failed" in r.getMessage() for r in caplog.records)
    assert leaks({**http.texts, "the log": caplog.text}, SECRETS) == []


async def echoing_proxy(proxy_factory: ProxyFactory, upstream: ScriptedUpstream) -> RunningProxy:
    """A proxy with ``upstream`` as its one provider ("echoing"), once ready (probed)."""
    provider = {
        "name": "echoing",
        "kind": "openai",
        "base_url": f"{upstream.url}/v1",
        "api_key": SCRIPTED_KEY,
        "models": {"sora-2": {"price_per_second": 0.1}},
        "timeout": 5,
    }
    proxy = await proxy_factory([provider], keys=[{"name": "plain", "key": CLIENT_PLAIN}])
    http = Transcript(proxy.url)
    try:
        await wait_for(lambda: ready(http))
    finally:
        await http.session.close()
    return proxy


async def test_an_upstream_that_echoes_our_key_in_base64_does_not_make_us_repeat_it(
    proxy_factory: ProxyFactory, scripted: ScriptedFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The key in base64 at all three offsets: not readable from the SDK's error envelope,
    nor from the probe's or the create's log lines, nor from any base64 in them."""
    caplog.set_level(logging.DEBUG)
    upstream = await scripted()
    upstream.answer("GET", "/v1/videos", echoes_in_base64(401))
    upstream.answer("POST", "/v1/videos", echoes_in_base64(400))
    proxy = await echoing_proxy(proxy_factory, upstream)
    with pytest.raises(openai.BadRequestError) as refused:
        await proxy.client(CLIENT_PLAIN).videos.create(prompt="a kite", model="sora-2")
    envelope = refused.value.response.json()
    assert set(envelope["error"]) == {"message", "type", "param", "code"}
    assert envelope["error"]["message"].startswith("Unauthorized: Basic ")  # the words arrived
    assert envelope["error"]["message"].count("[redacted]") == 3
    assert any("probe of echoing failed" in r.getMessage() for r in caplog.records)
    texts = {
        "the error envelope": refused.value.response.text,
        "the log": caplog.text,
        "log records": "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records),
    }
    assert [where for where, text in texts.items() if recoverable(SCRIPTED_KEY, text)] == []
