"""The webhook parts of the config: the ``webhooks`` section, and a key's webhook fields.

A key's ``webhook_secret`` is a Standard Webhooks secret, ``whsec_`` then base64 of at least 16
bytes (``secret_key`` reads it; the signer uses the same function), and ``webhook_events`` names
the events it wants (``video.completed``, ``video.failed``). ``webhook_url`` and a per-request
callback URL are http(s) URLs; whether their address may be reached is decided when a delivery
connects (``router.jobs.webhooks``), not here.
"""

from __future__ import annotations

import base64
import binascii

from router.config.model import WebhooksConfig
from router.config.reader import Section

EVENT_TYPES = ("video.completed", "video.failed")
SECRET_PREFIX = "whsec_"
_MIN_SECRET_BYTES = 16


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret; ``ValueError`` when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("must be whsec_ followed by base64") from None
    if len(key) < _MIN_SECRET_BYTES:
        raise ValueError(f"must hold at least {_MIN_SECRET_BYTES} bytes after whsec_")
    return key


def parse_key_webhook(s: Section) -> tuple[str, str, tuple[str, ...]]:
    """A key's (webhook_url, webhook_secret, webhook_events)."""
    url = s.url("webhook_url")
    secret = s.text("webhook_secret")
    if secret:
        try:
            secret_key(secret)
        except ValueError as exc:
            s.problem("webhook_secret", str(exc))
    if url and not secret:
        s.problem("webhook_secret", "is required with webhook_url (deliveries are signed)")
    raw = s.get("webhook_events", list(EVENT_TYPES))
    events: tuple[str, ...] = EVENT_TYPES
    if not isinstance(raw, list) or not all(e in EVENT_TYPES for e in raw):
        s.problem("webhook_events", f"must be a list of {', '.join(EVENT_TYPES)}")
    else:
        events = tuple(str(e) for e in raw)
    return url, secret, events


def parse_webhooks(s: Section) -> WebhooksConfig:
    d = WebhooksConfig()
    config = WebhooksConfig(
        first_delay=s.positive("first_delay", d.first_delay),
        factor=s.positive("factor", d.factor),
        max_delay=s.positive("max_delay", d.max_delay),
        jitter=s.share("jitter", d.jitter) if s.get("jitter") != 0 else 0.0,
        give_up_after=s.positive("give_up_after", d.give_up_after),
        timeout=s.positive("timeout", d.timeout),
        lease=s.positive("lease", d.lease),
        allow_private_addresses=s.flag("allow_private_addresses", d.allow_private_addresses),
        concurrency=s.integer("concurrency", d.concurrency, low=1),
    )
    if config.factor < 1:
        s.problem("factor", "must be >= 1")
    return config
