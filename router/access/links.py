"""Signed, expiring content links: how relay clients download a video without sending a key.

Relay clients expect ``data.output`` to be a plain link, as a CDN would hand out. Ours is
``{server.public_url}/v2/videos/content/{job_id}?expires=<unix>&sig=<hex>``, where ``sig`` is
HMAC-SHA256 under ``server.link_secret`` over the job id and the expiry exactly as written in
the link. Whoever holds a link can fetch that one video until ``expires`` (``server.link_ttl``
after the poll that handed it out, but never past the video's ``expires_at``: the provider's
expiry until our copy is whole, then our copy's (``router.assets``); a link must not promise
what will have been deleted); changing any part of it breaks the
signature. Without a configured secret a random one is drawn per process, so links stop working
at a restart.

Signing only: the route that honours links is in ``router.api.relay``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Callable
from urllib.parse import urlencode

from router.config.model import ServerConfig
from router.errors import Forbidden

CONTENT_PREFIX = "/v2/videos/content/"


class LinkSigner:
    __slots__ = ("_base", "_clock", "_key", "_ttl")

    def __init__(self, server: ServerConfig, clock: Callable[[], float]) -> None:
        self._base = server.public_url.rstrip("/")
        self._key = server.link_secret.encode() if server.link_secret else secrets.token_bytes(32)
        self._ttl = server.link_ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"LinkSigner(base={self._base!r})"  # never the key

    def link(self, job_id: str, asset_expires_at: float | None = None) -> str:
        """A link to the video of ``job_id``, good for ``link_ttl`` seconds from now or until
        ``asset_expires_at`` (the video's ``expires_at``), whichever comes first."""
        ends = self._clock() + self._ttl
        if asset_expires_at is not None:
            ends = min(ends, asset_expires_at)
        expires = str(math.ceil(ends))
        query = urlencode({"expires": expires, "sig": self._signature(job_id, expires)})
        return f"{self._base}{CONTENT_PREFIX}{job_id}?{query}"

    def verify(self, job_id: str, expires: str | None, sig: str | None) -> None:
        """Return only if ``sig`` signs exactly this job id and expiry, and that is still ahead.

        Raises ``Forbidden`` otherwise, without saying which part was wrong.
        """
        if expires is None or sig is None:
            raise Forbidden("This content link is not valid.", code="invalid_link")
        expected = self._signature(job_id, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise Forbidden("This content link is not valid.", code="invalid_link")
        # Signed by us, so it is the decimal we wrote.
        if int(expires) <= self._clock():
            raise Forbidden(
                "This content link has expired; poll the task for a fresh one.",
                code="link_expired",
            )

    def _signature(self, job_id: str, expires: str) -> str:
        message = f"{job_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
