"""Bearer token -> ``ClientKey``.

Only SHA-256 digests of client keys are held (config hashes a plain ``key`` at load), so a
memory dump or a repr never shows one. Lookup hashes the presented token and finds its digest
in a dict; the final equality check is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from router.config.model import ClientKeyConfig
from router.errors import Forbidden, Unauthenticated


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

    __slots__ = ("_by_digest",)

    def __init__(self, keys: Iterable[ClientKeyConfig]) -> None:
        self._by_digest: dict[bytes, ClientKey] = {}
        self.replace(keys)

    def replace(self, keys: Iterable[ClientKeyConfig]) -> None:
        """Swap in a reloaded key list in one assignment: a request sees the old or the new."""
        by_digest = {}
        for key in keys:
            digest = bytes.fromhex(key.key_sha256)
            models = None if "*" in key.models else frozenset(key.models)
            by_digest[digest] = ClientKey(name=key.name, digest=digest, models=models, config=key)
        self._by_digest = by_digest

    def authenticate(self, authorization: str | None) -> ClientKey:
        """The key behind an ``Authorization: Bearer`` header, or 401."""
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
