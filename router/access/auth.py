"""Bearer token -> ``ClientKey``.

Only SHA-256 digests of client keys are held (config hashes a plain ``key`` at load), so the
config, a repr or an error never shows one. Lookup hashes the presented token and finds its
digest in a dict; the final equality check is constant-time.

A client polls with the same ``Authorization`` header many times a second, so the headers
that authenticated recently are remembered, by exact string, with their key: a poll then
costs a dict lookup instead of the hash (``python -m bench.ab`` put the hash path at ~10% of
a poll's CPU, issue 21). What that must not change:

- revocation: a reload's ``replace`` starts an empty memory with the new keys, so a removed
  key is refused by the first request after it;
- memory: at most ``RECENT_HEADERS`` entries, and only headers that authenticated (a
  refused one is never kept, so guessing cannot grow it); when full it starts over;
- timing: a refused header costs the hash and the constant-time check as before; the lookup
  compares strings only on equal ``hash()`` values, which are keyed per process (SipHash), so
  a guess cannot be steered onto a remembered header. A header held here is one the request
  buffers held anyway; it never appears in a repr.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from router.config.model import ClientKeyConfig
from router.errors import Forbidden, Unauthenticated

RECENT_HEADERS = 1024  # authenticated headers remembered; past it the memory starts over


@dataclass(slots=True, frozen=True)
class ClientKey:
    """One downstream credential, as the request path needs it."""

    name: str
    digest: bytes
    models: frozenset[str] | None  # None: every catalogue model
    config: ClientKeyConfig

    def __repr__(self) -> str:
        return f"ClientKey(name={self.name!r})"

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise Forbidden(
                f"This key may not use the model '{model}'.",
                param="model",
                code="model_not_allowed",
            )


class KeyRing:
    """Every configured client key, indexed by the digest of its secret."""

    __slots__ = ("_by_digest", "_recent")

    def __init__(self, keys: Iterable[ClientKeyConfig]) -> None:
        self._by_digest: dict[bytes, ClientKey] = {}
        self._recent: dict[str, ClientKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[ClientKeyConfig]) -> None:
        """Swap in a reloaded key list, and forget every remembered header, in one assignment
        (on the loop, between requests): a request sees the old keys or the new."""
        by_digest = {}
        for key in keys:
            digest = bytes.fromhex(key.key_sha256)
            models = None if "*" in key.models else frozenset(key.models)
            by_digest[digest] = ClientKey(name=key.name, digest=digest, models=models, config=key)
        self._by_digest, self._recent = by_digest, {}

    @property
    def remembered(self) -> int:
        """How many authenticated headers are remembered now (at most ``RECENT_HEADERS``)."""
        return len(self._recent)

    def authenticate(self, authorization: str) -> ClientKey:
        """The key behind an ``Authorization: Bearer`` header ("" when there is none), or 401."""
        key = self._recent.get(authorization)
        if key is not None:
            return key
        key = self._check(authorization)
        recent = self._recent
        if len(recent) >= RECENT_HEADERS:
            recent.clear()
        recent[authorization] = key
        return key

    def _check(self, authorization: str) -> ClientKey:
        if not authorization:
            raise Unauthenticated(
                "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'."
            )
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("Authorization must be 'Bearer YOUR_KEY'.")
        # aiohttp keeps header bytes that are not UTF-8 as surrogates: hash them as they came.
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        key = self._by_digest.get(digest)
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise Unauthenticated("Incorrect API key provided.")
        return key
