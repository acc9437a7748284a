"""config.yaml -> frozen dataclasses, validated once before anything starts.

Owns the config file's schema: its defaults (including the built-in model catalogue),
``${VAR}`` expansion (done by ``router.config_env``) and validation. Every problem is collected
and raised together in one ``ConfigError``, each as ``dotted.path: what is wrong``, so
``sora-proxy check`` lists them all in one run. Messages name fields, list positions,
catalogue sizes and environment variables but never repeat a value read from the file or the
environment, and reprs hide secrets, so a credential cannot leak through either.

Pure: no event loop and no I/O beyond reading the file in ``load_config``. Runtime objects
(sessions, limiters, the job store) are built from these records at startup, elsewhere.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from hashlib import sha256
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import yaml

from providers.simulation import SimulationSettings
from router.config_env import EnvText, child_path, expand_env

KINDS = ("openai", "azure", "relay", "simulator")
STRATEGIES = ("balanced", "cheapest", "fastest", "priority", "weighted")

_SIZE = re.compile(r"\d+x\d+")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_INTEGER = re.compile(r"[-+]?[0-9]+")
_BAD_SIZE = "must be a size like 1280x720"
_BAD_SECONDS = "must be a whole number of seconds > 0"
_OUTSIDE_CATALOGUE = "not in the catalogue entry of this model"

_T = TypeVar("_T")
_D = TypeVar("_D")  # the default a typed read falls back to (None for optional fields)


class ConfigError(Exception):
    """The config is unusable; ``problems`` holds every reason as ``dotted.path: what is wrong``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8000  # 0 picks a free port (tests)
    public_url: str = ""  # base of links handed to clients; the parser fills it from host and port
    admin_key: str = field(default="", repr=False)  # the admin API is off when empty
    max_body_bytes: int = 52428800  # request bodies, uploads included
    max_prompt_chars: int = 32000
    poll_after_ms: int = 2000  # sent to clients as openai-poll-after-ms
    shutdown_timeout: float = 10.0
    link_ttl: float = 86400.0  # lifetime of signed content links (relay dialect)
    # HMAC key of those links; empty: a random one per process
    link_secret: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    path: str = "./data/sora-proxy.db"  # load_config resolves it against the file's directory


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientKeyConfig:
    """One downstream credential. Only the hash of its secret is kept, never the secret."""

    name: str
    key_sha256: str = field(repr=False)  # lower-case hex
    rpm: int | None = None
    max_concurrent: int | None = None
    daily_budget_usd: float | None = None
    models: tuple[str, ...] = ("*",)  # client model names this key may use; "*" is all


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A client-facing catalogue entry: what clients may ask for under this model name."""

    name: str
    sizes: tuple[str, ...]  # "WxH"
    seconds: tuple[int, ...]
    default_size: str
    default_seconds: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderModel:
    """How one provider serves one catalogue model: its upstream name, price and narrowing."""

    name: str  # the client model name, a key of the catalogue
    upstream_model: str
    price_per_second: float | None  # USD for every size; None when priced per size
    price_by_size: Mapping[str, float]  # size -> USD per second; empty when one price
    seconds: tuple[int, ...] | None = None  # None: all of the catalogue entry's
    sizes: tuple[str, ...] | None = None  # None: all of the catalogue entry's

    def price_for(self, size: str) -> float | None:
        """USD per generated second at ``size``; validation guarantees one for every size served."""
        return self.price_by_size.get(size, self.price_per_second)

    def supports(self, size: str, seconds: int, catalogue: ModelSpec) -> bool:
        """Whether both the catalogue entry and this provider allow ``size`` and ``seconds``."""
        return (
            size in catalogue.sizes
            and seconds in catalogue.seconds
            and (self.sizes is None or size in self.sizes)
            and (self.seconds is None or seconds in self.seconds)
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    name: str
    kind: str  # one of KINDS
    base_url: str  # no trailing "/"; "" only for kind simulator (started in-process)
    api_key: str = field(default="", repr=False)
    api_version: str = "preview"  # azure only
    models: Mapping[str, ProviderModel]  # client model name -> how this provider serves it
    rpm: int | None = None
    max_concurrent: int | None = None
    poll_interval: float = 5.0  # seconds between upstream status polls of one job
    timeout: float = 30.0  # per upstream HTTP call
    weight: float = 1.0
    priority: int = 0  # lower goes first under the priority strategy
    simulate: SimulationSettings | None = None  # set exactly when kind is simulator


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    strategy: str = "balanced"  # one of STRATEGIES
    max_attempts: int = 3  # per job, across providers
    retry_output_moderation: bool = False
    job_deadline: float = 3600.0
    stall_timeout: float = 600.0  # an attempt without progress this long is failed over
    seed: int | None = None  # seeds the strategies' random choices


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    probe_interval: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    key_label: bool = True  # turn off to drop the `key` label on deployments with many keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    server: ServerConfig
    store: StoreConfig
    keys: tuple[ClientKeyConfig, ...]
    models: Mapping[str, ModelSpec]  # the client-facing catalogue
    default_model: str
    providers: tuple[ProviderConfig, ...]
    routing: RoutingConfig
    health: HealthConfig
    metrics: MetricsConfig


_DEFAULT_MODEL = "sora-2"
_DEFAULT_CATALOGUE = (
    ModelSpec(
        name="sora-2",
        sizes=("720x1280", "1280x720"),
        seconds=(4, 8, 10, 12, 15),
        default_size="720x1280",
        default_seconds=4,
    ),
    ModelSpec(
        name="sora-2-pro",
        sizes=("720x1280", "1280x720", "1024x1792", "1792x1024"),
        seconds=(4, 8, 10, 12, 15, 25),
        default_size="720x1280",
        default_seconds=4,
    ),
)
# Defaults of records that have required fields, read by the parser so no default is restated.
_PROVIDER_DEFAULTS = ProviderConfig(name="", kind="", base_url="", models=MappingProxyType({}))
_KEY_DEFAULTS = ClientKeyConfig(name="", key_sha256="")


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; ``env`` (default ``os.environ``) fills ``${VAR}``.

    A relative ``store.path`` is resolved against the file's directory, so the proxy finds
    its database whatever directory it is started from.
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
    if config.store.path == ":memory:" or os.path.isabs(config.store.path):
        return config
    resolved = os.path.abspath(file.parent / config.store.path)
    return replace(config, store=StoreConfig(path=resolved))


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
    problems = _Problems()
    tree, unset = expand_env(raw, os.environ if env is None else env)
    for path, variable in unset:
        problems.unset_variable(path, variable)
    top = _Section(tree, "", problems, _field_names(Config))
    catalogue = _parse_catalogue(top)
    config = Config(
        server=_parse_server(top.section("server", _field_names(ServerConfig))),
        store=_parse_store(top.section("store", _field_names(StoreConfig))),
        keys=_parse_keys(top, catalogue),
        models=MappingProxyType(catalogue),
        default_model=top.choice("default_model", _DEFAULT_MODEL, tuple(catalogue)),
        providers=_parse_providers(top, catalogue),
        routing=_parse_routing(top.section("routing", _field_names(RoutingConfig))),
        health=_parse_health(top.section("health", _field_names(HealthConfig))),
        metrics=_parse_metrics(top.section("metrics", _field_names(MetricsConfig))),
    )
    if problems.messages:
        raise ConfigError(problems.messages)
    return config


class _Problems:
    """Problems by dotted path; a value whose variable is unset is reported once, for that."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._unset_paths: set[str] = set()

    def add(self, path: str, message: str) -> None:
        if path not in self._unset_paths:
            self.messages.append(f"{path}: {message}")

    def unset_variable(self, path: str, variable: str) -> None:
        self.messages.append(f"{path}: environment variable {variable} is not set")
        self._unset_paths.add(path)


class _Section:
    """One mapping of the file. A bad value records a problem and reads as the default."""

    def __init__(self, raw: object, path: str, problems: _Problems, known: Collection[str]) -> None:
        self.path = path
        self.problems = problems
        self._raw: Mapping[object, object] = raw if isinstance(raw, Mapping) else {}
        if raw is not None and not isinstance(raw, Mapping):
            problems.add(path, "must be a mapping")
        for name in self._raw:
            if name not in known:
                problems.add(self.at(name), "unknown field")

    def at(self, name: object) -> str:
        return child_path(self.path, name)

    def get(self, name: str, default: object = None) -> object:
        value = self._raw.get(name)
        return default if value is None else value

    def problem(self, name: str, message: str) -> None:
        self.problems.add(self.at(name), message)

    def section(self, name: str, known: Collection[str]) -> _Section:
        return _Section(self.get(name), self.at(name), self.problems, known)

    def sections(self, name: str, known: Collection[str]) -> list[_Section]:
        """The mappings of a required list field."""
        found = []
        for path, item in self.items(name, required=True):
            if isinstance(item, Mapping):
                found.append(_Section(item, path, self.problems, known))
            else:
                self.problems.add(path, "must be a mapping")
        return found

    def items(self, name: str, *, required: bool = False) -> list[tuple[str, object]]:
        """``(path, value)`` per entry of a list field, which must not be empty when given."""
        value = self.get(name)
        if value is None:
            if required:
                self.problem(name, "is required")
            return []
        if not isinstance(value, list) or not value:
            self.problem(name, "must be a non-empty list")
            return []
        return [(f"{self.at(name)}[{i}]", item) for i, item in enumerate(value)]

    def entries(self, name: str, *, required: bool = False) -> list[tuple[str, str, object]]:
        """``(key, path, value)`` per entry of a mapping field keyed by names."""
        value = self.get(name)
        if value is None:
            if required:
                self.problem(name, "is required")
            return []
        if not isinstance(value, Mapping) or not value:
            self.problem(name, "must be a non-empty mapping")
            return []
        found: list[tuple[str, str, object]] = []
        for key, item in value.items():
            path = child_path(self.at(name), key)
            if isinstance(key, str) and key:
                found.append((key, path, item))
            else:
                self.problems.add(path, "names must be non-empty strings")
        return found

    def text(self, name: str, default: str = "") -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            self.problem(name, "must be a string")
            return default
        return str(value)  # a plain str, never EnvText

    def required_text(self, name: str, default: str = "") -> str:
        """A non-empty string; ``default`` when absent, and a problem when there is none."""
        value = self.text(name, default)
        if not value and isinstance(self.get(name, ""), str):  # a non-string was reported already
            self.problem(name, "must not be empty" if name in self._raw else "is required")
        return value

    def choice(self, name: str, default: str, options: Collection[str]) -> str:
        value = self.text(name, default)
        if value not in options:
            self.problem(name, f"must be one of {', '.join(options)}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if isinstance(value, EnvText) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            self.problem(name, "must be true or false")
            return default
        return value

    def integer(
        self, name: str, default: _D, *, low: int | None = None, high: int | None = None
    ) -> int | _D:
        raw = self.get(name)
        if raw is None:
            return default
        value = _as_int(raw)
        if value is None:
            self.problem(name, "must be an integer")
        elif (low is not None and value < low) or (high is not None and value > high):
            self.problem(name, f"must be >= {low}" if high is None else f"must be {low} to {high}")
        else:
            return value
        return default

    def positive(self, name: str, default: _D) -> float | _D:
        raw = self.get(name)
        value = None if raw is None else _check_positive(raw, self.at(name), self.problems)
        return default if value is None else value


def _check_positive(raw: object, path: str, problems: _Problems) -> float | None:
    value = _as_float(raw)
    if value is None:
        problems.add(path, "must be a number")
    elif not value > 0:
        problems.add(path, "must be > 0")
    else:
        return value
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, EnvText) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def _as_float(value: object) -> float | None:
    """A finite number; bools are not numbers."""
    if isinstance(value, EnvText):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return float(value)


def _as_seconds(value: object) -> int | None:
    """A whole number of seconds > 0; digit strings count, as OpenAI's own API sends "8"."""
    number = int(value) if isinstance(value, str) and _INTEGER.fullmatch(value) else _as_int(value)
    return number if number is not None and number > 0 else None


def _as_size(value: object) -> str | None:
    return str(value) if isinstance(value, str) and _SIZE.fullmatch(value) else None


def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _report_repeats(found: list[tuple[str, str]], problems: _Problems, what: str) -> None:
    """Report each repeated non-empty value at its path, naming where it first appeared."""
    first: dict[str, str] = {}
    for path, value in found:
        if value and value in first:
            problems.add(path, f"same {what} as {first[value]}")
        first.setdefault(value, path)


def _parse_server(s: _Section) -> ServerConfig:
    d = ServerConfig()
    host = s.required_text("host", d.host)
    port = s.integer("port", d.port, low=0, high=65535)
    default_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return ServerConfig(
        host=host,
        port=port,
        public_url=_url(s, "public_url") or default_url,
        admin_key=s.text("admin_key", d.admin_key),
        max_body_bytes=s.integer("max_body_bytes", d.max_body_bytes, low=1),
        max_prompt_chars=s.integer("max_prompt_chars", d.max_prompt_chars, low=1),
        poll_after_ms=s.integer("poll_after_ms", d.poll_after_ms, low=1),
        shutdown_timeout=s.positive("shutdown_timeout", d.shutdown_timeout),
        link_ttl=s.positive("link_ttl", d.link_ttl),
        link_secret=s.text("link_secret", d.link_secret),
    )


def _url(s: _Section, name: str) -> str:
    """An http(s) URL without its trailing slash, or "" when not given."""
    url = s.text(name).rstrip("/")
    if url and not url.startswith(("http://", "https://")):
        s.problem(name, "must start with http:// or https://")
    return url


def _parse_store(s: _Section) -> StoreConfig:
    return StoreConfig(path=s.required_text("path", StoreConfig().path))


def _parse_routing(s: _Section) -> RoutingConfig:
    d = RoutingConfig()
    return RoutingConfig(
        strategy=s.choice("strategy", d.strategy, STRATEGIES),
        max_attempts=s.integer("max_attempts", d.max_attempts, low=1),
        retry_output_moderation=s.flag("retry_output_moderation", d.retry_output_moderation),
        job_deadline=s.positive("job_deadline", d.job_deadline),
        stall_timeout=s.positive("stall_timeout", d.stall_timeout),
        seed=s.integer("seed", d.seed),
    )


def _parse_health(s: _Section) -> HealthConfig:
    return HealthConfig(probe_interval=s.positive("probe_interval", HealthConfig().probe_interval))


def _parse_metrics(s: _Section) -> MetricsConfig:
    return MetricsConfig(key_label=s.flag("key_label", MetricsConfig().key_label))


def _parse_catalogue(top: _Section) -> dict[str, ModelSpec]:
    """The built-in catalogue with the file's entries replacing or adding models by name."""
    catalogue = {spec.name: spec for spec in _DEFAULT_CATALOGUE}
    known = _field_names(ModelSpec) - {"name"}
    for name, path, raw in top.entries("models"):
        catalogue[name] = _parse_model_spec(_Section(raw, path, top.problems, known), name)
    return catalogue


def _parse_model_spec(s: _Section, name: str) -> ModelSpec:
    sizes = _list_of(s, "sizes", _as_size, _BAD_SIZE, required=True) or ()
    seconds = _list_of(s, "seconds", _as_seconds, _BAD_SECONDS, required=True) or ()
    default_size = s.text("default_size", sizes[0] if sizes else "")
    default_seconds = _as_seconds(s.get("default_seconds", seconds[0] if seconds else None))
    if sizes and default_size not in sizes:
        s.problem("default_size", "must be one of sizes")
    if seconds and default_seconds not in seconds:
        s.problem("default_seconds", "must be one of seconds")
    return ModelSpec(
        name=name,
        sizes=sizes,
        seconds=seconds,
        default_size=default_size,
        default_seconds=default_seconds or 0,
    )


def _list_of(
    s: _Section,
    name: str,
    parse: Callable[[object], _T | None],
    invalid: str,
    *,
    required: bool = False,
    within: Collection[_T] | None = None,
) -> tuple[_T, ...] | None:
    """A list field of ``parse``d values, None when absent; ``within`` is the catalogue entry's."""
    found: list[_T] = []
    for path, raw in s.items(name, required=required):
        value = parse(raw)
        if value is None:
            s.problems.add(path, invalid)
        elif within is not None and value not in within:
            s.problems.add(path, _OUTSIDE_CATALOGUE)
        else:
            found.append(value)
    return tuple(found) if s.get(name) is not None else None


def _parse_keys(top: _Section, catalogue: Mapping[str, ModelSpec]) -> tuple[ClientKeyConfig, ...]:
    sections = top.sections("keys", _field_names(ClientKeyConfig) | {"key"})
    keys = [_parse_key(s, catalogue) for s in sections]
    pairs = list(zip(sections, keys, strict=True))
    _report_repeats([(s.at("name"), key.name) for s, key in pairs], top.problems, "name")
    _report_repeats([(s.path, key.key_sha256) for s, key in pairs], top.problems, "secret")
    return tuple(keys)


def _parse_key(s: _Section, catalogue: Mapping[str, ModelSpec]) -> ClientKeyConfig:
    def allowed_model(value: object) -> str | None:
        return (
            str(value) if isinstance(value, str) and (value == "*" or value in catalogue) else None
        )

    return ClientKeyConfig(
        name=s.required_text("name"),
        key_sha256=_key_digest(s),
        rpm=s.integer("rpm", None, low=1),
        max_concurrent=s.integer("max_concurrent", None, low=1),
        daily_budget_usd=s.positive("daily_budget_usd", None),
        models=_list_of(s, "models", allowed_model, 'must be "*" or a model of the catalogue')
        or _KEY_DEFAULTS.models,
    )


def _key_digest(s: _Section) -> str:
    """The lower-case hex SHA-256 of the key's secret, whichever way the file gave it."""
    if (s.get("key") is None) == (s.get("key_sha256") is None):
        s.problems.add(s.path, "give exactly one of key, key_sha256")
        return ""
    if s.get("key") is not None:
        secret = s.required_text("key")
        return sha256(secret.encode()).hexdigest() if secret else ""
    digest = s.text("key_sha256")
    if not _SHA256_HEX.fullmatch(digest):
        s.problem("key_sha256", "must be 64 hexadecimal digits")
        return ""
    return digest.lower()


def _parse_providers(
    top: _Section, catalogue: Mapping[str, ModelSpec]
) -> tuple[ProviderConfig, ...]:
    sections = top.sections("providers", _field_names(ProviderConfig))
    providers = [_parse_provider(s, catalogue) for s in sections]
    pairs = zip(sections, providers, strict=True)
    _report_repeats([(s.at("name"), p.name) for s, p in pairs], top.problems, "name")
    return tuple(providers)


def _parse_provider(s: _Section, catalogue: Mapping[str, ModelSpec]) -> ProviderConfig:
    d = _PROVIDER_DEFAULTS
    kind = s.required_text("kind")
    base_url = _url(s, "base_url")
    if kind in KINDS:  # the rules below depend on the kind, so only a known kind is checked
        if not base_url and kind != "simulator":
            s.problem("base_url", "is required")
        if s.get("api_version") is not None and kind != "azure":
            s.problem("api_version", "only for kind azure")
        if s.get("simulate") is not None and kind != "simulator":
            s.problem("simulate", "only for kind simulator")
    elif kind:
        s.problem("kind", f"must be one of {', '.join(KINDS)}")
    return ProviderConfig(
        name=s.required_text("name"),
        kind=kind,
        base_url=base_url,
        api_key=s.text("api_key", d.api_key),
        api_version=s.required_text("api_version", d.api_version),
        models=MappingProxyType(_parse_provider_models(s, catalogue)),
        rpm=s.integer("rpm", d.rpm, low=1),
        max_concurrent=s.integer("max_concurrent", d.max_concurrent, low=1),
        poll_interval=s.positive("poll_interval", d.poll_interval),
        timeout=s.positive("timeout", d.timeout),
        weight=s.positive("weight", d.weight),
        priority=s.integer("priority", d.priority),
        simulate=_parse_simulate(s) if kind == "simulator" else None,
    )


def _parse_simulate(s: _Section) -> SimulationSettings:
    settings, problems = SimulationSettings.parse(s.get("simulate"), s.at("simulate"))
    s.problems.messages.extend(problems)
    return settings


def _parse_provider_models(
    s: _Section, catalogue: Mapping[str, ModelSpec]
) -> dict[str, ProviderModel]:
    models = {}
    known = _field_names(ProviderModel) - {"name", "price_by_size"}
    for name, path, raw in s.entries("models", required=True):
        if name in catalogue:
            model = _Section(raw, path, s.problems, known)
            models[name] = _parse_provider_model(model, catalogue[name])
        else:
            s.problems.add(path, "not in the models catalogue")
    return models


def _parse_provider_model(s: _Section, spec: ModelSpec) -> ProviderModel:
    sizes = _list_of(s, "sizes", _as_size, _BAD_SIZE, within=spec.sizes)
    price, prices = _parse_price(s, spec, served=sizes or spec.sizes)
    return ProviderModel(
        name=spec.name,
        upstream_model=s.required_text("upstream_model", spec.name),
        price_per_second=price,
        price_by_size=MappingProxyType(prices),
        seconds=_list_of(s, "seconds", _as_seconds, _BAD_SECONDS, within=spec.seconds),
        sizes=sizes,
    )


def _parse_price(
    s: _Section, spec: ModelSpec, served: tuple[str, ...]
) -> tuple[float | None, dict[str, float]]:
    """One price for every size, or a price per size that covers every size served."""
    raw = s.get("price_per_second")
    if not isinstance(raw, Mapping):
        if raw is None:
            s.problem("price_per_second", "is required")
        return s.positive("price_per_second", None), {}
    entries = s.entries("price_per_second")
    prices: dict[str, float] = {}
    for size, path, value in entries:
        if size not in spec.sizes:
            s.problems.add(path, _OUTSIDE_CATALOGUE)
        elif (price := _check_positive(value, path, s.problems)) is not None:
            prices[size] = price
    for size in served if entries else ():
        if size not in raw:
            s.problem("price_per_second", f"no price for size {size}")
    return None, prices
