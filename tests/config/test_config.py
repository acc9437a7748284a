"""Tests for router.config.model: parsing, defaults, ${VAR} expansion and problem reporting."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from providers.registry import KINDS
from providers.simulator.settings import SimulationSettings
from router.config.env import expand_env
from router.config.load import load_config, parse_config
from router.config.model import STRATEGIES, ConfigError, ModelSpec
from router.routing import strategies

FULL_CONFIG = """\
server:
  host: 0.0.0.0
  port: ${PORT:-8080}
  public_url: https://videos.example/
  admin_key: ${ADMIN_KEY}
  max_body_bytes: 1048576
  poll_after_ms: 1500
  shutdown_timeout: 2.5
  link_secret: ${LINK_SECRET}
store:
  path: ./state/jobs.db
keys:
  - name: team-a
    key: sk-team-a-secret
    rpm: 60
    max_concurrent: 10
    daily_budget_usd: 50
    models: [sora-2]
  - name: team-b
    key_sha256: ${TEAM_B_HASH}
models:
  sora-2: {sizes: [720x1280, 1280x720], seconds: [4, "8", 12], default_seconds: 8}
  veo-3: {sizes: [1920x1080], seconds: [8]}
default_model: veo-3
providers:
  - name: relay-a
    kind: openai
    base_url: https://${RELAY_HOST:-relay-a.example}/v1/
    api_key: ${RELAY_A_KEY}
    models:
      sora-2:
        price_per_second: 0.10
        seconds: [4, 8]
      sora-2-pro:
        price_per_second: {720x1280: 0.30, 1280x720: 0.30, 1024x1792: 0.50, 1792x1024: 0.50}
        upstream_model: sora-2-pro-2025
    rpm: 120
    max_concurrent: 20
    poll_interval: 2.5
    timeout: 45
    weight: 2
    priority: 1
  - name: azure-east
    kind: azure
    base_url: https://east.openai.azure.example
    api_version: "2025-05-01"
    models:
      veo-3: {price_per_second: 0.4}
  - name: sim
    kind: simulator
    models:
      sora-2: {price_per_second: 0.01}
    simulate: {render_seconds: 3, fail_rate: 0.1}
routing:
  strategy: cheapest
  max_attempts: 2
  retry_output_moderation: ${RETRY_OUTPUT:-true}
  job_deadline: 900
  stall_timeout: 120.5
  seed: 7
health:
  probe_interval: 10
metrics:
  key_label: false
"""

TEAM_B_SECRET = "sk-team-b-secret"
ENV = {
    "ADMIN_KEY": "admin-secret-value",
    "LINK_SECRET": "link-secret-value",
    "TEAM_B_HASH": hashlib.sha256(TEAM_B_SECRET.encode()).hexdigest().upper(),
    "RELAY_A_KEY": "relay-secret-value",
}
SECRETS = ("admin-secret-value", "link-secret-value", "relay-secret-value", "sk-team-a-secret")


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def minimal() -> dict[str, Any]:
    """A valid config with one key and one simulated provider, fresh for each test to change."""
    return {
        "keys": [{"name": "k", "key": "sk-k"}],
        "providers": [
            {"name": "sim", "kind": "simulator", "models": {"sora-2": {"price_per_second": 0.1}}}
        ],
    }


def problems_of(raw: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, env or {})
    return caught.value.problems


def test_full_config_loads_with_env_expansion_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_CONFIG), env=ENV)

    assert config.server.host == "0.0.0.0"
    assert config.server.port == 8080  # ${PORT:-8080}, read as an integer
    assert config.server.public_url == "https://videos.example"
    assert config.server.admin_key == "admin-secret-value"
    assert config.server.link_secret == "link-secret-value"
    assert config.server.max_body_bytes == 1048576
    assert config.server.max_prompt_chars == 32000
    assert config.server.poll_after_ms == 1500
    assert config.server.shutdown_timeout == 2.5
    assert config.store.path == str(tmp_path / "state" / "jobs.db")

    team_a, team_b = config.keys
    assert (team_a.name, team_a.rpm, team_a.max_concurrent) == ("team-a", 60, 10)
    assert team_a.daily_budget_usd == 50.0
    assert team_a.models == ("sora-2",)
    assert team_b.key_sha256 == hashlib.sha256(TEAM_B_SECRET.encode()).hexdigest()
    assert (team_b.rpm, team_b.daily_budget_usd, team_b.models) == (None, None, ("*",))

    assert list(config.models) == ["sora-2", "sora-2-pro", "veo-3"]
    assert config.models["sora-2"] == ModelSpec(
        name="sora-2",
        sizes=("720x1280", "1280x720"),
        seconds=(4, 8, 12),
        default_size="720x1280",
        default_seconds=8,
    )
    assert config.default_model == "veo-3"

    relay, azure, sim = config.providers
    assert relay.base_url == "https://relay-a.example/v1"
    assert relay.api_key == "relay-secret-value"
    assert (relay.rpm, relay.max_concurrent, relay.poll_interval) == (120, 20, 2.5)
    assert (relay.timeout, relay.weight, relay.priority, relay.simulate) == (45.0, 2.0, 1, None)
    assert relay.models["sora-2"].upstream_model == "sora-2"
    assert relay.models["sora-2"].seconds == (4, 8)
    assert relay.models["sora-2-pro"].upstream_model == "sora-2-pro-2025"
    assert (azure.kind, azure.api_version, azure.api_key) == ("azure", "2025-05-01", "")
    assert azure.models["veo-3"].price_for("1920x1080") == 0.4
    assert sim.base_url == ""
    assert sim.simulate == SimulationSettings(render_seconds=3.0, fail_rate=0.1)

    assert config.routing.strategy == "cheapest"
    assert config.routing.max_attempts == 2
    assert config.routing.retry_output_moderation is True
    assert (config.routing.job_deadline, config.routing.stall_timeout) == (900.0, 120.5)
    assert config.routing.seed == 7
    assert config.health.probe_interval == 10.0
    assert config.metrics.key_label is False


def test_absent_sections_take_their_defaults() -> None:
    config = parse_config(minimal(), env={})

    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8000
    assert config.server.public_url == "http://127.0.0.1:8000"
    assert (config.server.admin_key, config.server.link_secret) == ("", "")
    assert config.server.max_body_bytes == 50 * 1024 * 1024
    assert config.store.path == "./data/sora-proxy.db"
    assert config.routing.strategy == "balanced"
    assert config.routing.max_attempts == 3
    assert config.routing.retry_output_moderation is False
    assert (config.routing.job_deadline, config.routing.stall_timeout) == (3600.0, 600.0)
    assert config.health.probe_interval == 30.0
    assert config.metrics.key_label is True
    assert config.default_model == "sora-2"
    assert config.providers[0].simulate == SimulationSettings()
    assert config.providers[0].poll_interval == 5.0


def test_default_catalogue_covers_sora_2_and_sora_2_pro() -> None:
    models = parse_config(minimal(), env={}).models

    assert list(models) == ["sora-2", "sora-2-pro"]
    assert models["sora-2"].sizes == ("720x1280", "1280x720")
    assert models["sora-2"].seconds == (4, 8, 10, 12, 15)
    assert models["sora-2-pro"].sizes == ("720x1280", "1280x720", "1024x1792", "1792x1024")
    assert models["sora-2-pro"].seconds == (4, 8, 10, 12, 15, 25)
    assert (models["sora-2-pro"].default_size, models["sora-2-pro"].default_seconds) == (
        "720x1280",
        4,
    )


def test_public_url_defaults_to_host_and_port_with_ipv6_brackets() -> None:
    raw = minimal() | {"server": {"host": "::1", "port": 0}}

    assert parse_config(raw, env={}).server.public_url == "http://[::1]:0"


def test_key_is_kept_only_as_its_sha256() -> None:
    config = parse_config(minimal(), env={})

    assert config.keys[0].key_sha256 == hashlib.sha256(b"sk-k").hexdigest()
    assert "sk-k" not in dataclasses.astuple(config.keys[0])
    assert "sk-k" not in repr(config)


def test_per_size_prices_and_narrowing_decide_price_and_support() -> None:
    raw = minimal()
    raw["providers"][0]["models"] = {
        "sora-2-pro": {
            "price_per_second": {"720x1280": 0.3, "1024x1792": 0.5},
            "sizes": ["720x1280", "1024x1792"],
            "seconds": [4, "8"],
        }
    }
    config = parse_config(raw, env={})
    catalogue = config.models["sora-2-pro"]
    model = config.providers[0].models["sora-2-pro"]

    assert model.price_per_second is None
    assert dict(model.price_by_size) == {"720x1280": 0.3, "1024x1792": 0.5}
    assert model.price_for("1024x1792") == 0.5
    assert model.price_for("1280x720") is None
    assert model.supports("720x1280", 8, catalogue)
    assert not model.supports("1280x720", 8, catalogue)  # not in this provider's sizes
    assert not model.supports("720x1280", 12, catalogue)  # not in this provider's seconds
    assert not model.supports("720x1280", 25, config.models["sora-2"])  # not in that catalogue


def test_single_price_applies_to_every_size() -> None:
    config = parse_config(minimal(), env={})
    model = config.providers[0].models["sora-2"]

    assert (model.price_per_second, dict(model.price_by_size)) == (0.1, {})
    assert model.price_for("1280x720") == 0.1
    assert model.supports("1280x720", 15, config.models["sora-2"])
    assert not model.supports("1280x720", 25, config.models["sora-2"])


@pytest.mark.parametrize(
    ("store_path", "expected"),
    [
        ("db/jobs.db", "{dir}/db/jobs.db"),
        ("../jobs.db", "{parent}/jobs.db"),
        ("/var/lib/sora/jobs.db", "/var/lib/sora/jobs.db"),
        (":memory:", ":memory:"),
    ],
)
def test_store_path_resolves_against_the_config_file_directory(
    tmp_path: Path, store_path: str, expected: str
) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    text = f"""\
        store: {{path: "{store_path}"}}
        keys: [{{name: k, key: sk-k}}]
        providers: [{{name: s, kind: simulator, models: {{sora-2: {{price_per_second: 1}}}}}}]
        """
    config = load_config(write(config_dir, text))

    assert config.store.path == expected.format(dir=config_dir, parent=tmp_path)


def test_parse_config_leaves_a_relative_store_path_as_given() -> None:
    raw = minimal() | {"store": {"path": "db/jobs.db"}}

    assert parse_config(raw, env={}).store.path == "db/jobs.db"


def test_every_problem_is_reported_together_by_dotted_path(tmp_path: Path) -> None:
    text = """\
        server:
          port: 70000
          colour: blue
        keys:
          - name: a
            key: sk-a
          - name: b
            key: sk-a
            rpm: 0
          - name: c
            key: sk-c
            key_sha256: 00
        models:
          sora-3: {sizes: [wide], seconds: [5], default_seconds: 6}
        providers:
          - name: p
            kind: openai
            base_url: ftp://p.example
            models:
              sora-2: {price_per_second: 0, seconds: [25]}
              sora-2-pro: {price_per_second: {720x1280: 0.3, 640x480: 0.2}, sizes: [720x1280]}
            simulate: {fail_rate: 0.5}
          - name: p
            kind: carrier-pigeon
            models: {}
        routing:
          strategy: random
          max_attempts: true
          job_deadline: -1
        """
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})

    assert set(caught.value.problems) == {
        "server.colour: unknown field",
        "server.port: must be 0 to 65535",
        "keys[1].rpm: must be >= 1",
        "keys[1]: same secret as keys[0]",
        "keys[2]: give exactly one of key, key_sha256",
        "models.sora-3.sizes[0]: must be a size like 1280x720",
        "models.sora-3.default_seconds: must be one of seconds",
        "providers[0].base_url: must start with http:// or https://",
        "providers[0].simulate: only for kind simulator",
        "providers[0].models.sora-2.price_per_second: must be > 0",
        "providers[0].models.sora-2.seconds[0]: not in the catalogue entry of this model",
        "providers[0].models.sora-2-pro.price_per_second.640x480: "
        "not in the catalogue entry of this model",
        "providers[1].kind: must be one of openai, azure, relay, openrouter, gemini, xai, ark, "
        "fal, simulator",
        "providers[1].models: must be a non-empty mapping",
        "providers[1].name: same name as providers[0].name",
        "routing.strategy: must be one of balanced, cheapest, fastest, priority, weighted",
        "routing.max_attempts: must be an integer",
        "routing.job_deadline: must be > 0",
    }
    assert str(caught.value) == "\n".join(caught.value.problems)


REMOVE = object()


def changed(path: str, value: object) -> dict[str, Any]:
    """``minimal()`` with the value at a dotted path set (appended past a list's end) or removed."""
    raw = minimal()
    steps: list[Any] = [
        int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)
    ]
    parent: Any = raw
    for step in steps[:-1]:
        parent = parent[step] if isinstance(parent, list) else parent.setdefault(step, {})
    last = steps[-1]
    if value is REMOVE:
        parent.pop(last)
    elif isinstance(parent, list) and last == len(parent):
        parent.append(value)
    else:
        parent[last] = value
    return raw


PROVIDER_MODEL = "providers[0].models.sora-2"


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("keys", REMOVE, "keys: is required"),
        ("providers", [], "providers: must be a non-empty list"),
        ("extra", 1, "extra: unknown field"),
        ("server", [], "server: must be a mapping"),
        ("server.port", True, "server.port: must be an integer"),
        ("server.port", "8000", "server.port: must be an integer"),
        ("server.host", "", "server.host: must not be empty"),
        (
            "server.public_url",
            "videos.example",
            "server.public_url: must start with http:// or https://",
        ),
        ("store.path", "", "store.path: must not be empty"),
        ("default_model", "sora-9", "default_model: must be one of sora-2, sora-2-pro"),
        ("keys[1]", "sk-x", "keys[1]: must be a mapping"),
        ("keys[1]", {"name": "k", "key": "sk-j"}, "keys[1].name: same name as keys[0].name"),
        ("keys[0].name", REMOVE, "keys[0].name: is required"),
        ("keys[0].name", "", "keys[0].name: must not be empty"),
        ("keys[0].key", 7, "keys[0].key: must be a string"),
        ("keys[0].key", REMOVE, "keys[0]: give exactly one of key, key_sha256"),
        ("keys[0].max_concurrent", 0, "keys[0].max_concurrent: must be >= 1"),
        ("keys[0].daily_budget_usd", "5", "keys[0].daily_budget_usd: must be a number"),
        ("keys[0].models", [], "keys[0].models: must be a non-empty list"),
        (
            "keys[0].models",
            ["sora-9"],
            'keys[0].models[0]: must be "*" or a model of the catalogue',
        ),
        ("providers[0].kind", REMOVE, "providers[0].kind: is required"),
        ("providers[0].kind", "openai", "providers[0].base_url: is required"),
        ("providers[0].api_version", "v1", "providers[0].api_version: only for kind azure"),
        ("providers[0].timeout", 0, "providers[0].timeout: must be > 0"),
        (
            "providers[0].poll_interval",
            float("inf"),
            "providers[0].poll_interval: must be a number",
        ),
        ("providers[0].weight", -1, "providers[0].weight: must be > 0"),
        ("providers[0].rpm", 1.5, "providers[0].rpm: must be an integer"),
        ("providers[0].priority", "high", "providers[0].priority: must be an integer"),
        ("providers[0].models", REMOVE, "providers[0].models: is required"),
        (
            "providers[0].models.sora-9",
            {},
            "providers[0].models.sora-9: not in the models catalogue",
        ),
        (
            "providers[0].simulate",
            {"fail_rate": 2},
            "providers[0].simulate.fail_rate: must be a number from 0 to 1",
        ),
        (
            f"{PROVIDER_MODEL}.price_per_second",
            REMOVE,
            f"{PROVIDER_MODEL}.price_per_second: is required",
        ),
        (
            f"{PROVIDER_MODEL}.price_per_second",
            "cheap",
            f"{PROVIDER_MODEL}.price_per_second: must be a number",
        ),
        (
            f"{PROVIDER_MODEL}.price_per_second",
            {"720x1280": 0.1},
            f"{PROVIDER_MODEL}.price_per_second: no price for size 1280x720",
        ),
        (
            f"{PROVIDER_MODEL}.price_per_second",
            {},
            f"{PROVIDER_MODEL}.price_per_second: must be a non-empty mapping",
        ),
        (
            f"{PROVIDER_MODEL}.upstream_model",
            "",
            f"{PROVIDER_MODEL}.upstream_model: must not be empty",
        ),
        (f"{PROVIDER_MODEL}.sizes", [], f"{PROVIDER_MODEL}.sizes: must be a non-empty list"),
        (
            f"{PROVIDER_MODEL}.sizes",
            ["1024x1792"],
            f"{PROVIDER_MODEL}.sizes[0]: not in the catalogue entry of this model",
        ),
        (f"{PROVIDER_MODEL}.seconds", "4", f"{PROVIDER_MODEL}.seconds: must be a non-empty list"),
        (f"{PROVIDER_MODEL}.quality", "hd", f"{PROVIDER_MODEL}.quality: unknown field"),
        ("models", [], "models: must be a non-empty mapping"),
        ("models.m", {"sizes": ["1x1"]}, "models.m.seconds: is required"),
        (
            "models.m",
            {"sizes": ["1x1"], "seconds": [0]},
            "models.m.seconds[0]: must be a whole number of seconds > 0",
        ),
        (
            "models.m",
            {"sizes": ["1x1"], "seconds": [4], "default_seconds": 8},
            "models.m.default_seconds: must be one of seconds",
        ),
        (
            "providers[0].content_hosts",
            ["cdn.example", "http://x/"],
            "providers[0].content_hosts[1]: must be a host name, an IP address, or *.domain",
        ),
        (
            "providers[0].allow_private_addresses",
            "yes",
            "providers[0].allow_private_addresses: must be true or false",
        ),
        ("providers[0].max_reply_bytes", 10, "providers[0].max_reply_bytes: must be >= 1024"),
        ("routing.seed", 1.0, "routing.seed: must be an integer"),
        ("routing.stall_timeout", "soon", "routing.stall_timeout: must be a number"),
        ("metrics.key_label", "no", "metrics.key_label: must be true or false"),
        ("health.probe_interval", False, "health.probe_interval: must be a number"),
    ],
)
def test_each_mistake_is_named_by_its_path(path: str, value: object, problem: str) -> None:
    assert problems_of(changed(path, value)) == [problem]


def test_upstream_boundary_fields_are_read_with_their_defaults() -> None:
    default = parse_config(minimal(), {}).providers[0]
    assert (default.content_hosts, default.allow_private_addresses) == ((), False)
    assert default.max_reply_bytes == 8 * 1024 * 1024
    raw = changed("providers[0].content_hosts", ["CDN.example", "*.files.example", "10.0.0.5"])
    raw["providers"][0]["max_reply_bytes"] = 65536
    provider = parse_config(raw, {}).providers[0]
    assert provider.content_hosts == ("cdn.example", "*.files.example", "10.0.0.5")
    assert provider.max_reply_bytes == 65536


def test_two_keys_with_the_same_secret_are_a_problem_however_given() -> None:
    raw = changed("keys[1]", {"name": "k2", "key_sha256": hashlib.sha256(b"sk-k").hexdigest()})

    assert problems_of(raw) == ["keys[1]: same secret as keys[0]"]


def test_unset_variable_is_reported_once_at_its_path() -> None:
    raw = changed(
        "providers[0]",
        {
            "name": "relay",
            "kind": "relay",
            "base_url": "${RELAY_URL}",
            "api_key": "${RELAY_A_KEY}",
            "models": {"sora-2": {"price_per_second": 0.1}},
        },
    )

    assert problems_of(raw) == [
        "providers[0].base_url: environment variable RELAY_URL is not set",
        "providers[0].api_key: environment variable RELAY_A_KEY is not set",
    ]


def test_numbers_and_flags_from_variables_read_as_their_field_type() -> None:
    raw = minimal() | {
        "server": {"port": "${PORT}", "shutdown_timeout": "${GRACE}"},
        "metrics": {"key_label": "${KEY_LABEL:-false}"},
    }
    config = parse_config(raw, env={"PORT": "9000", "GRACE": "1.5"})

    assert (config.server.port, config.server.shutdown_timeout) == (9000, 1.5)
    assert config.metrics.key_label is False
    assert problems_of(raw, env={"PORT": "eighty", "GRACE": "1.5"}) == [
        "server.port: must be an integer"
    ]


def test_expansion_uses_the_default_for_unset_or_empty_variables_only() -> None:
    tree, unset = expand_env(
        {"a": ["${X:-one}", "${Y:-two}", "${Z:-three}"], "b": "${A}/${B}", "${K}": 1, "c": 2},
        {"Y": "", "Z": "set", "A": "left", "B": ""},
    )

    assert tree == {"a": ["one", "two", "set"], "b": "left/", "${K}": 1, "c": 2}
    assert unset == []


def test_yaml_syntax_error_is_one_problem_naming_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 8000\n  admin_key: hunter2: secret\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})

    assert caught.value.problems == [
        f"{path}, line 3: invalid YAML: mapping values are not allowed here"
    ]


def test_missing_file_is_one_problem(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.problems == [f"{path}: cannot read (No such file or directory)"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "config: the document is empty"), ("- a\n", "config: must be a mapping of sections")],
)
def test_empty_or_non_mapping_document_is_a_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={})

    assert caught.value.problems == [problem]


def test_secrets_never_appear_in_reprs_or_problems(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_CONFIG), env=ENV)
    text = repr(config)
    for secret in (*SECRETS, ENV["TEAM_B_HASH"].lower(), config.keys[0].key_sha256):
        assert secret not in text

    broken = FULL_CONFIG.replace("public_url: https://videos.example/", "public_url: ${ADMIN_KEY}")
    broken = broken.replace("kind: azure", "kind: ${RELAY_A_KEY}")
    broken = broken.replace("upstream_model: sora-2-pro-2025", 'upstream_model: ["${LINK_SECRET}"]')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, broken), env=ENV)

    assert len(caught.value.problems) == 3
    for secret in SECRETS:
        assert secret not in str(caught.value)


def test_records_are_immutable() -> None:
    config = parse_config(minimal(), env={})

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.models["sora-3"] = config.models["sora-2"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.providers[0].models["sora-2"].price_by_size["1x1"] = 1.0  # type: ignore[index]


def test_kinds_and_strategies_are_the_documented_ones() -> None:
    assert KINDS == (
        "openai",
        "azure",
        "relay",
        "openrouter",
        "gemini",
        "xai",
        "ark",
        "fal",
        "simulator",
    )
    assert STRATEGIES == ("balanced", "cheapest", "fastest", "priority", "weighted")


def test_every_strategy_name_config_accepts_has_an_ordering() -> None:
    assert tuple(strategies.STRATEGIES) == STRATEGIES


def test_the_store_backend_defaults_to_sqlite() -> None:
    store = parse_config(minimal(), env={}).store

    assert (store.backend, store.url, store.cluster) == ("sqlite", "", False)


def test_the_redis_backend_takes_a_url_cluster_flag_and_timeout() -> None:
    raw = minimal() | {
        "server": {"link_secret": "fleet-wide"},
        "store": {
            "backend": "redis",
            "url": "redis://:hunter2@10.0.0.5:6379/0",
            "cluster": True,
            "timeout": 0.5,
        },
    }

    store = parse_config(raw, env={}).store

    assert (store.backend, store.url, store.cluster, store.timeout) == (
        "redis",
        "redis://:hunter2@10.0.0.5:6379/0",
        True,
        0.5,
    )
    assert "hunter2" not in repr(store)


def test_the_redis_backend_requires_a_redis_url_and_a_link_secret() -> None:
    raw = minimal() | {"store": {"backend": "redis", "url": "http://:hunter2@cache:6379"}}

    problems = problems_of(raw)

    assert set(problems) == {
        "store.url: must start with redis:// or rediss:// when backend is redis",
        "server.link_secret: is required when store.backend is redis (every instance must "
        "verify the links the others sign)",
    }
    assert not any("hunter2" in problem for problem in problems)


def test_an_unknown_store_backend_is_a_problem() -> None:
    raw = minimal() | {"store": {"backend": "postgres"}}

    assert problems_of(raw) == ["store.backend: must be one of sqlite, redis"]
