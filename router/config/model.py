"""The config's records: frozen dataclasses, each field's default beside it.

Built by ``router.config.load`` (``load_config``, ``parse_config``), which validates the whole
file once before anything starts and raises ``ConfigError`` with every problem, each as
``dotted.path: what is wrong``, so ``sora-proxy check`` lists them all in one run. Messages
name fields, list positions, catalogue sizes and environment variables but never repeat a
value read from the file or the environment, and reprs hide secrets, so a credential cannot
leak through either.

Pure records: runtime objects (sessions, limiters, the job store) are built from them at
startup, elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from providers.fieldmap import FieldMap
from providers.simulator.settings import SimulationSettings

# The names an operator may give ``routing.strategy``; ``router.routing.strategies`` keys its
# table by exactly these (a test holds the two together: routing sits above config).
STRATEGIES = ("balanced", "cheapest", "fastest", "priority", "weighted")
# Where jobs live: one process's SQLite file, or a Redis (or Redis Cluster) a fleet shares.
STORE_BACKENDS = ("sqlite", "redis")


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
    # seconds a connection may take to send its request headers (and may sit idle between
    # requests) before it is closed
    header_timeout: float = 15.0
    # seconds a request body may take on top of its length at min_upload_rate; later is a 408
    body_timeout: float = 30.0
    min_upload_rate: int = 65536  # bytes per second a body upload must keep up on average
    # open client connections at most; past it new ones are closed at once. 0: half the
    # process's open-file limit (ulimit -n)
    max_connections: int = 0
    max_prompt_chars: int = 32000
    poll_after_ms: int = 2000  # sent to clients as openai-poll-after-ms
    shutdown_timeout: float = 10.0
    link_ttl: float = 86400.0  # lifetime of signed content links (relay dialect)
    # HMAC key of those links; empty: a random one per process
    link_secret: str = field(default="", repr=False)
    # browser origins allowed to call the proxy (router.access.cors); empty: no CORS headers
    cors_origins: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    backend: str = "sqlite"  # one of STORE_BACKENDS
    path: str = "./data/sora-proxy.db"  # sqlite; load_config resolves it against the file's dir
    # redis: redis://[user:password@]host:port[/db], rediss:// for TLS; may hold a password
    url: str = field(default="", repr=False)
    cluster: bool = False  # redis: url names one node of a Redis Cluster
    timeout: float = 2.0  # redis: seconds a command may take before the store counts as down
    # redis: seconds a provider's poll lease lives unrenewed: how soon another instance takes
    # over the polling of a dead one's providers (router.jobs.tracking)
    lease_ttl: float = 10.0
    poll_batch: int = 500  # redis: due jobs one instance holds at most (its memory for polling)
    poll_cache: int = 10_000  # redis: job views cached for client polls (router.jobs.views)


ASSET_BACKENDS = ("local", "s3")


@dataclass(frozen=True, slots=True, kw_only=True)
class AssetsConfig:
    """Where finished videos are kept (``router.assets``), and for how long."""

    copy: bool = True  # false: no copies; content always streams from the provider
    backend: str = "local"  # one of ASSET_BACKENDS
    # local: the directory; "" puts it beside the job store (<store dir>/assets)
    path: str = ""
    endpoint: str = ""  # s3: the service's URL (http(s)://host:port)
    bucket: str = ""  # s3
    region: str = "us-east-1"  # s3
    prefix: str = ""  # s3: keys start with this
    access_key_id: str = field(default="", repr=False)  # s3; ${VAR} in the file
    secret_access_key: str = field(default="", repr=False)  # s3; ${VAR} in the file
    retention: float | None = None  # seconds a copy is kept; None: until deleted or evicted
    max_bytes: int | None = None  # over this, the oldest copies are evicted first
    copy_concurrency: int = 4  # copies running at once
    copy_bandwidth: int | None = None  # bytes per second across all copies; None: unbounded
    copy_retry_base: float = 2.0  # seconds before the first retry; doubles, up to 5 minutes
    # how long a copy is retried when the upstream gives no expiry for its output
    copy_window: float = 3600.0
    # seconds a copy's lease lasts unrenewed: in a fleet, how soon another instance takes over
    # the copy of one that died (renewed every third of it while the copy runs)
    copy_lease: float = 30.0
    thumbnails: bool = True  # make thumbnail and sprite sheet with ffmpeg where upstream has none
    thumbnail_concurrency: int = 1  # ffmpeg processes at once
    sweep_interval: float = 60.0  # seconds between retention sweeps


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientKeyConfig:
    """One downstream credential. Only the hash of its secret is kept, never the secret."""

    name: str
    key_sha256: str = field(repr=False)  # lower-case hex
    rpm: int | None = None
    max_concurrent: int | None = None
    daily_budget_usd: float | None = None
    models: tuple[str, ...] = ("*",)  # client model names this key may use; "*" is all
    webhook_url: str = ""  # where this key's job events are delivered; empty: none
    webhook_secret: str = field(default="", repr=False)  # whsec_ + base64: signs deliveries
    webhook_events: tuple[str, ...] = ("video.completed", "video.failed")


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
    fields: FieldMap | None = None  # fal only: how this model's inputs are named

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
    kind: str  # one of providers.registry.KINDS
    base_url: str  # no trailing "/"; "" only for kind simulator (started in-process)
    api_key: str = field(default="", repr=False)
    api_version: str = "preview"  # azure only
    models: Mapping[str, ProviderModel]  # client model name -> how this provider serves it
    rpm: int | None = None  # creates sent in any 60 s
    max_concurrent: int | None = None  # renders in flight (accepted, not finished)
    poll_interval: float = 5.0  # seconds between upstream status polls of one job
    poll_rpm: int | None = None  # status reads sent in any 60 s
    poll_max_concurrent: int = 16  # status reads in flight at once
    timeout: float = 30.0  # per upstream HTTP call
    weight: float = 1.0
    priority: int = 0  # lower goes first under the priority strategy
    simulate: SimulationSettings | None = None  # set exactly when kind is simulator
    # hosts besides base_url's that content may be fetched from ("*.cdn.example" for a domain)
    content_hosts: tuple[str, ...] = ()
    # let content come from loopback/link-local/private addresses when base_url's host is public
    allow_private_addresses: bool = False
    max_reply_bytes: int = 8388608  # a longer JSON reply from the upstream is an upstream error
    format: str = "openai"  # simulator only: the wire format (adapter kind) it is reached by
    # task kinds only: seconds a typical render takes, for estimated progress; None: the kind's
    render_estimate: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingConfig:
    strategy: str = "balanced"  # one of STRATEGIES
    max_attempts: int = 3  # per job, across providers
    retry_output_moderation: bool = False
    job_deadline: float = 3600.0
    stall_timeout: float = 600.0  # an attempt without progress this long is failed over
    # an unanswered create not found in the provider's list this long is sent elsewhere
    reconcile_window: float = 120.0
    seed: int | None = None  # seeds the strategies' random choices
    # balanced: USD one second of expected render time is worth against expected cost
    latency_weight: float = 0.001
    # when every capable provider is at its cap, a create waits up to this many seconds ...
    admission_wait: float = 10.0
    admission_queue: int = 100  # ... and at most this many wait at once (0: none); more get 429


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthConfig:
    probe_interval: float = 30.0  # seconds between active probes (free calls) of each provider
    consecutive_failures: int = 5  # outlier detection: this many failures in a row eject
    failure_rate: float = 0.5  # ... or this share of failures over the window
    min_volume: int = 10  # outcomes needed before the failure rate is judged
    base_ejection: float = 30.0  # seconds; the n-th ejection lasts n times this
    max_ejection: float = 300.0  # seconds; the longest an ejection lasts
    max_ejected_share: float = 0.7  # never eject more than this share of the providers
    panic_threshold: float = 0.3  # below this healthy share, route over every capable provider


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhooksConfig:
    """How job events are delivered: the retry schedule and where callbacks may go."""

    first_delay: float = 5.0  # seconds before the first retry of a failed delivery
    factor: float = 2.0  # each retry waits this many times longer ...
    max_delay: float = 3600.0  # ... up to this many seconds
    jitter: float = 0.2  # each wait is drawn from [1 - jitter, 1 + jitter] times the delay
    give_up_after: float = 259200.0  # an event still undelivered this long after it was made
    timeout: float = 10.0  # per delivery attempt
    # seconds an instance holds an event it is delivering (renewed every third of it while the
    # attempt runs); an instance that dies holding one leaves it to another after this long
    lease: float = 30.0
    allow_private_addresses: bool = False  # callbacks to loopback, link-local, private hosts
    concurrency: int = 8  # deliveries in flight at once


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    key_label: bool = True  # turn off to drop the `key` label on deployments with many keys


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    server: ServerConfig
    store: StoreConfig
    assets: AssetsConfig
    keys: tuple[ClientKeyConfig, ...]
    models: Mapping[str, ModelSpec]  # the client-facing catalogue
    default_model: str
    providers: tuple[ProviderConfig, ...]
    routing: RoutingConfig
    health: HealthConfig
    metrics: MetricsConfig
    webhooks: WebhooksConfig = WebhooksConfig()
