"""The config file's sections, each parsed into its ``router.config.model`` record.

One parser per section: server, store, keys, the models catalogue (the built-in one, with the
file's entries replacing or adding models) and the default model, providers and the models each
serves, routing, health and metrics. Rules that span fields live here too: a key gives exactly
one of ``key`` and ``key_sha256``, a provider's kind decides which fields it may have, and a
provider can only narrow and price what the catalogue entry of a model allows.

Every read goes through ``router.config.reader``, so a problem is recorded by dotted path and
parsing goes on; nothing here raises. ``router.config.load.parse_config`` assembles the sections
and turns the recorded problems into one ``ConfigError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from hashlib import sha256
from types import MappingProxyType
from typing import TypeVar

from providers.fieldmap import FieldMap
from providers.registry import ADAPTERS, KINDS, TASK_KINDS, geometry
from providers.simulator.settings import SimulationSettings
from providers.sizes import Geometry
from router.config.model import (
    ASSET_BACKENDS,
    STORE_BACKENDS,
    STRATEGIES,
    AssetsConfig,
    ClientKeyConfig,
    HealthConfig,
    MetricsConfig,
    ModelSpec,
    ProviderConfig,
    ProviderModel,
    RoutingConfig,
    ServerConfig,
    StoreConfig,
)
from router.config.reader import (
    Section,
    as_seconds,
    as_size,
    check_positive,
    field_names,
    report_repeats,
)
from router.config.webhooks import parse_key_webhook

_REDIS_SCHEMES = ("redis://", "rediss://")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_BAD_SIZE = "must be a size like 1280x720"
_BAD_SECONDS = "must be a whole number of seconds > 0"
_OUTSIDE_CATALOGUE = "not in the catalogue entry of this model"
_HOST = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.\-:]*[A-Za-z0-9])?")
_BAD_HOST = "must be a host name, an IP address, or *.domain"

_T = TypeVar("_T")

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


def parse_server(s: Section) -> ServerConfig:
    d = ServerConfig()
    host = s.required_text("host", d.host)
    port = s.integer("port", d.port, low=0, high=65535)
    default_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return ServerConfig(
        host=host,
        port=port,
        public_url=s.url("public_url") or default_url,
        admin_key=s.text("admin_key", d.admin_key),
        max_body_bytes=s.integer("max_body_bytes", d.max_body_bytes, low=1),
        header_timeout=s.positive("header_timeout", d.header_timeout),
        body_timeout=s.positive("body_timeout", d.body_timeout),
        min_upload_rate=s.integer("min_upload_rate", d.min_upload_rate, low=1),
        max_connections=s.integer("max_connections", d.max_connections, low=0),
        max_prompt_chars=s.integer("max_prompt_chars", d.max_prompt_chars, low=1),
        poll_after_ms=s.integer("poll_after_ms", d.poll_after_ms, low=1),
        shutdown_timeout=s.positive("shutdown_timeout", d.shutdown_timeout),
        link_ttl=s.positive("link_ttl", d.link_ttl),
        link_secret=s.text("link_secret", d.link_secret),
        cors_origins=_list_of(s, "cors_origins", _origin, _NOT_AN_ORIGIN) or d.cors_origins,
    )


_NOT_AN_ORIGIN = 'must be "*" or an origin: scheme, host and optional port (https://app.example)'


def _origin(raw: object) -> str | None:
    """``*`` or ``http(s)://host[:port]`` as a browser sends it in ``Origin``: no path, no slash."""
    if raw == "*":
        return "*"
    if not isinstance(raw, str) or not raw.startswith(("http://", "https://")):
        return None
    host = raw.split("://", 1)[1]
    return raw if host and not any(c in host for c in "/?# ") else None


def parse_store(s: Section) -> StoreConfig:
    d = StoreConfig()
    backend = s.choice("backend", d.backend, STORE_BACKENDS)
    url = s.text("url", d.url)
    if backend == "redis" and not url.startswith(_REDIS_SCHEMES):
        # the message never repeats the value: a URL may carry a password
        s.problem("url", f"must start with {' or '.join(_REDIS_SCHEMES)} when backend is redis")
    return StoreConfig(
        backend=backend,
        path=s.required_text("path", d.path),
        url=url,
        cluster=s.flag("cluster", d.cluster),
        timeout=s.positive("timeout", d.timeout),
        lease_ttl=s.positive("lease_ttl", d.lease_ttl),
        poll_batch=s.integer("poll_batch", d.poll_batch, low=1),
        poll_cache=s.integer("poll_cache", d.poll_cache, low=1),
    )


def check_fleet_secrets(server: ServerConfig, store: StoreConfig, top: Section) -> None:
    """With a shared store, many processes serve one URL: a link one signs must verify on the
    others, so they need one ``link_secret`` (a per-process random one would not do)."""
    if store.backend == "redis" and not server.link_secret:
        top.problems.add(
            "server.link_secret",
            "is required when store.backend is redis (every instance must verify the links "
            "the others sign)",
        )


def parse_assets(s: Section) -> AssetsConfig:
    d = AssetsConfig()
    backend = s.choice("backend", d.backend, ASSET_BACKENDS)
    config = AssetsConfig(
        copy=s.flag("copy", d.copy),
        backend=backend,
        path=s.text("path", d.path),
        endpoint=s.url("endpoint"),
        bucket=s.text("bucket", d.bucket),
        region=s.required_text("region", d.region),
        prefix=s.text("prefix", d.prefix),
        access_key_id=s.text("access_key_id", d.access_key_id),
        secret_access_key=s.text("secret_access_key", d.secret_access_key),
        retention=s.positive("retention", d.retention),
        max_bytes=s.integer("max_bytes", d.max_bytes, low=1),
        copy_concurrency=s.integer("copy_concurrency", d.copy_concurrency, low=1),
        copy_bandwidth=s.integer("copy_bandwidth", d.copy_bandwidth, low=1),
        copy_retry_base=s.positive("copy_retry_base", d.copy_retry_base),
        copy_window=s.positive("copy_window", d.copy_window),
        copy_lease=s.positive("copy_lease", d.copy_lease),
        thumbnails=s.flag("thumbnails", d.thumbnails),
        thumbnail_concurrency=s.integer("thumbnail_concurrency", d.thumbnail_concurrency, low=1),
        sweep_interval=s.positive("sweep_interval", d.sweep_interval),
    )
    if backend == "s3":
        for name in ("endpoint", "bucket", "access_key_id", "secret_access_key"):
            if not getattr(config, name):
                s.problem(name, "is required with backend s3")
    return config


def parse_routing(s: Section) -> RoutingConfig:
    d = RoutingConfig()
    return RoutingConfig(
        strategy=s.choice("strategy", d.strategy, STRATEGIES),
        max_attempts=s.integer("max_attempts", d.max_attempts, low=1),
        retry_output_moderation=s.flag("retry_output_moderation", d.retry_output_moderation),
        job_deadline=s.positive("job_deadline", d.job_deadline),
        stall_timeout=s.positive("stall_timeout", d.stall_timeout),
        reconcile_window=s.positive("reconcile_window", d.reconcile_window),
        seed=s.integer("seed", d.seed),
        latency_weight=s.positive("latency_weight", d.latency_weight),
        admission_wait=s.positive("admission_wait", d.admission_wait),
        admission_queue=s.integer("admission_queue", d.admission_queue, low=0),
    )


def parse_health(s: Section) -> HealthConfig:
    d = HealthConfig()
    return HealthConfig(
        probe_interval=s.positive("probe_interval", d.probe_interval),
        consecutive_failures=s.integer("consecutive_failures", d.consecutive_failures, low=1),
        failure_rate=s.share("failure_rate", d.failure_rate),
        min_volume=s.integer("min_volume", d.min_volume, low=1),
        base_ejection=s.positive("base_ejection", d.base_ejection),
        max_ejection=s.positive("max_ejection", d.max_ejection),
        max_ejected_share=s.share("max_ejected_share", d.max_ejected_share),
        panic_threshold=s.share("panic_threshold", d.panic_threshold),
    )


def parse_metrics(s: Section) -> MetricsConfig:
    return MetricsConfig(key_label=s.flag("key_label", MetricsConfig().key_label))


def parse_catalogue(top: Section) -> dict[str, ModelSpec]:
    """The built-in catalogue with the file's entries replacing or adding models by name."""
    catalogue = {spec.name: spec for spec in _DEFAULT_CATALOGUE}
    known = field_names(ModelSpec) - {"name"}
    for name, path, raw in top.entries("models"):
        catalogue[name] = _parse_model_spec(Section(raw, path, top.problems, known), name)
    return catalogue


def parse_default_model(top: Section, catalogue: Mapping[str, ModelSpec]) -> str:
    """The model a create without ``model`` gets; it must be in the catalogue."""
    return top.choice("default_model", _DEFAULT_MODEL, tuple(catalogue))


def _parse_model_spec(s: Section, name: str) -> ModelSpec:
    sizes = _list_of(s, "sizes", as_size, _BAD_SIZE, required=True) or ()
    seconds = _list_of(s, "seconds", as_seconds, _BAD_SECONDS, required=True) or ()
    default_size = s.text("default_size", sizes[0] if sizes else "")
    default_seconds = as_seconds(s.get("default_seconds", seconds[0] if seconds else None))
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
    s: Section,
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


def parse_keys(top: Section, catalogue: Mapping[str, ModelSpec]) -> tuple[ClientKeyConfig, ...]:
    sections = top.sections("keys", field_names(ClientKeyConfig) | {"key"})
    keys = [_parse_key(s, catalogue) for s in sections]
    pairs = list(zip(sections, keys, strict=True))
    report_repeats([(s.at("name"), key.name) for s, key in pairs], top.problems, "name")
    report_repeats([(s.path, key.key_sha256) for s, key in pairs], top.problems, "secret")
    return tuple(keys)


def _parse_key(s: Section, catalogue: Mapping[str, ModelSpec]) -> ClientKeyConfig:
    def allowed_model(value: object) -> str | None:
        return (
            str(value) if isinstance(value, str) and (value == "*" or value in catalogue) else None
        )

    url, secret, events = parse_key_webhook(s)
    return ClientKeyConfig(
        name=s.required_text("name"),
        key_sha256=_key_digest(s),
        rpm=s.integer("rpm", None, low=1),
        max_concurrent=s.integer("max_concurrent", None, low=1),
        daily_budget_usd=s.positive("daily_budget_usd", None),
        models=_list_of(s, "models", allowed_model, 'must be "*" or a model of the catalogue')
        or _KEY_DEFAULTS.models,
        webhook_url=url,
        webhook_secret=secret,
        webhook_events=events,
    )


def _key_digest(s: Section) -> str:
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


def parse_providers(top: Section, catalogue: Mapping[str, ModelSpec]) -> tuple[ProviderConfig, ...]:
    sections = top.sections("providers", field_names(ProviderConfig))
    providers = [_parse_provider(s, catalogue) for s in sections]
    pairs = zip(sections, providers, strict=True)
    report_repeats([(s.at("name"), p.name) for s, p in pairs], top.problems, "name")
    return tuple(providers)


def _parse_provider(s: Section, catalogue: Mapping[str, ModelSpec]) -> ProviderConfig:
    d = _PROVIDER_DEFAULTS
    kind = s.required_text("kind")
    base_url = s.url("base_url")
    wire = s.choice("format", d.format, tuple(ADAPTERS))  # the adapter that reaches it
    if kind in KINDS:  # the rules below depend on the kind, so only a known kind is checked
        if kind != "simulator":
            wire = kind
        if not base_url and kind != "simulator":
            s.problem("base_url", "is required")
        if s.get("api_version") is not None and wire != "azure":
            s.problem("api_version", "only for kind azure")
        if s.get("simulate") is not None and kind != "simulator":
            s.problem("simulate", "only for kind simulator")
        if s.get("format") is not None and kind != "simulator":
            s.problem("format", "only for kind simulator")
        if s.get("render_estimate") is not None and wire not in TASK_KINDS:
            s.problem("render_estimate", f"only for kinds {', '.join(TASK_KINDS)}")
    elif kind:
        s.problem("kind", f"must be one of {', '.join(KINDS)}")
    return ProviderConfig(
        name=s.required_text("name"),
        kind=kind,
        base_url=base_url,
        api_key=s.text("api_key", d.api_key),
        api_version=s.required_text("api_version", d.api_version),
        models=MappingProxyType(_parse_provider_models(s, catalogue, wire)),
        rpm=s.integer("rpm", d.rpm, low=1),
        max_concurrent=s.integer("max_concurrent", d.max_concurrent, low=1),
        poll_interval=s.positive("poll_interval", d.poll_interval),
        poll_rpm=s.integer("poll_rpm", d.poll_rpm, low=1),
        poll_max_concurrent=s.integer("poll_max_concurrent", d.poll_max_concurrent, low=1),
        timeout=s.positive("timeout", d.timeout),
        weight=s.positive("weight", d.weight),
        priority=s.integer("priority", d.priority),
        simulate=_parse_simulate(s) if kind == "simulator" else None,
        content_hosts=_list_of(s, "content_hosts", _as_host, _BAD_HOST) or d.content_hosts,
        allow_private_addresses=s.flag("allow_private_addresses", d.allow_private_addresses),
        max_reply_bytes=s.integer("max_reply_bytes", d.max_reply_bytes, low=1024),
        format=wire,
        render_estimate=s.positive("render_estimate", d.render_estimate),
    )


def _as_host(value: object) -> str | None:
    """A host name or IP literal, optionally ``*.`` for every name under a domain."""
    if not isinstance(value, str) or not _HOST.fullmatch(value):
        return None
    return value.lower()


def _parse_simulate(s: Section) -> SimulationSettings:
    settings, problems = SimulationSettings.parse(s.get("simulate"), s.at("simulate"))
    s.problems.messages.extend(problems)
    return settings


def _parse_provider_models(
    s: Section, catalogue: Mapping[str, ModelSpec], wire: str
) -> dict[str, ProviderModel]:
    models = {}
    known = field_names(ProviderModel) - {"name", "price_by_size"}
    for name, path, raw in s.entries("models", required=True):
        if name in catalogue:
            model = Section(raw, path, s.problems, known)
            models[name] = _parse_provider_model(model, catalogue[name], wire)
        else:
            s.problems.add(path, "not in the models catalogue")
    return models


def _parse_provider_model(s: Section, spec: ModelSpec, wire: str) -> ProviderModel:
    sizes = _list_of(s, "sizes", as_size, _BAD_SIZE, within=spec.sizes)
    seconds = _list_of(s, "seconds", as_seconds, _BAD_SECONDS, within=spec.seconds)
    fields = _parse_fields(s, wire)
    if fields is not None and not fields.names_size and sizes is None:
        s.problem("sizes", "is required: the field mapping does not tell the model the size")
    if fields is not None and fields.seconds is None and seconds is None:
        s.problem("seconds", "is required: the field mapping does not tell the model the length")
    shape = geometry(wire, fields)
    if shape is not None:
        sizes, seconds = _renderable(s, spec, shape, wire, sizes, seconds)
    price, prices = _parse_price(s, spec, served=sizes or spec.sizes)
    return ProviderModel(
        name=spec.name,
        upstream_model=s.required_text("upstream_model", spec.name),
        price_per_second=price,
        price_by_size=MappingProxyType(prices),
        seconds=seconds,
        sizes=sizes,
        fields=fields,
    )


def _parse_fields(s: Section, wire: str) -> FieldMap | None:
    """A fal model's field mapping (required there, refused for every other kind)."""
    raw = s.get("fields")
    if wire != "fal":
        if raw is not None:
            s.problem("fields", "only for kind fal")
        return None
    if raw is None:
        s.problem("fields", "is required for kind fal")
        return None
    fields, problems = FieldMap.parse(raw, s.at("fields"))
    s.problems.messages.extend(problems)
    return fields


def _renderable(
    s: Section,
    spec: ModelSpec,
    shape: Geometry,
    wire: str,
    sizes: tuple[str, ...] | None,
    seconds: tuple[int, ...] | None,
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The sizes and seconds a kind can ask for exactly, of those the provider serves.

    Listed ones the kind cannot name are problems; left unlisted, the catalogue entry's are
    narrowed to what the kind can name, so selection never offers this provider a request it
    would render at another size or length (``Selector.capable``).
    """
    for size in sizes or ():
        if not shape.renders_size(size):
            s.problem("sizes", f"kind {wire} cannot render {size} exactly")
    for length in seconds or ():
        if not shape.renders_seconds(length):
            s.problem("seconds", f"kind {wire} cannot render {length} seconds")
    kept_sizes = tuple(x for x in (sizes or spec.sizes) if shape.renders_size(x))
    kept_seconds = tuple(n for n in (seconds or spec.seconds) if shape.renders_seconds(n))
    if not kept_sizes:
        s.problem("sizes", f"kind {wire} can render no size of this model exactly")
    if not kept_seconds:
        s.problem("seconds", f"kind {wire} can render no length of this model")
    return kept_sizes, kept_seconds


def _parse_price(
    s: Section, spec: ModelSpec, served: tuple[str, ...]
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
        elif (price := check_positive(value, path, s.problems)) is not None:
            prices[size] = price
    for size in served if entries else ():
        if size not in raw:
            s.problem("price_per_second", f"no price for size {size}")
    return None, prices
