"""Reading config.yaml: ``load_config`` (the file) and ``parse_config`` (a parsed tree).

The pipeline: ``${VAR}`` expansion (``router.config.env``), then one parser per section
(``router.config.sections``) reading through ``router.config.reader`` and building the records
of ``router.config.model``. Every problem is collected and raised together in one
``ConfigError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import yaml

from router.config import sections
from router.config.env import expand_env
from router.config.model import (
    AssetsConfig,
    Config,
    ConfigError,
    HealthConfig,
    MetricsConfig,
    RoutingConfig,
    ServerConfig,
    StoreConfig,
    WebhooksConfig,
)
from router.config.reader import Problems, Section, field_names
from router.config.webhooks import parse_webhooks


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; ``env`` (default ``os.environ``) fills ``${VAR}``.

    A relative ``store.path`` (and ``assets.path``) is resolved against the file's directory,
    so the proxy finds its database and its videos whatever directory it is started from.
    """
    file = Path(path)
    try:
        with file.open("rb") as stream:
            raw = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read ({exc.strerror or exc})"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(file, exc)]) from exc
    config = parse_config(raw, env)
    if config.assets.path and not os.path.isabs(config.assets.path):
        assets_path = os.path.abspath(file.parent / config.assets.path)
        config = replace(config, assets=replace(config.assets, path=assets_path))
    if config.store.path == ":memory:" or os.path.isabs(config.store.path):
        return config
    resolved = os.path.abspath(file.parent / config.store.path)
    return replace(config, store=replace(config.store, path=resolved))


def _yaml_problem(file: Path, exc: yaml.YAMLError) -> str:
    # One line, in the parser's own words; never the document's text, which may hold a secret.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return f"{file}, line {exc.problem_mark.line + 1}: invalid YAML: {exc.problem}"
    return f"{file}: invalid YAML"


def parse_config(raw: object, env: Mapping[str, str] | None = None) -> Config:
    """Validate a ``yaml.safe_load`` result; raises ``ConfigError`` listing every problem."""
    if raw is None:
        raise ConfigError(["config: the document is empty"])
    if not isinstance(raw, dict):
        raise ConfigError(["config: must be a mapping of sections"])
    problems = Problems()
    tree, unset = expand_env(raw, os.environ if env is None else env)
    for path, variable in unset:
        problems.unset_variable(path, variable)
    top = Section(tree, "", problems, field_names(Config))
    catalogue = sections.parse_catalogue(top)
    server = sections.parse_server(top.section("server", field_names(ServerConfig)))
    store = sections.parse_store(top.section("store", field_names(StoreConfig)))
    sections.check_fleet_secrets(server, store, top)
    config = Config(
        server=server,
        store=store,
        assets=sections.parse_assets(top.section("assets", field_names(AssetsConfig))),
        keys=sections.parse_keys(top, catalogue),
        models=MappingProxyType(catalogue),
        default_model=sections.parse_default_model(top, catalogue),
        providers=sections.parse_providers(top, catalogue),
        routing=sections.parse_routing(top.section("routing", field_names(RoutingConfig))),
        health=sections.parse_health(top.section("health", field_names(HealthConfig))),
        metrics=sections.parse_metrics(top.section("metrics", field_names(MetricsConfig))),
        webhooks=parse_webhooks(top.section("webhooks", field_names(WebhooksConfig))),
    )
    if problems.messages:
        raise ConfigError(problems.messages)
    return config
