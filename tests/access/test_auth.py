"""``KeyRing``'s memory of recently authenticated headers (issue 21): it answers as the hash
path would, never keeps a refused header, stays bounded, and forgets everything on a reload."""

from __future__ import annotations

import hashlib

import pytest

from router.access.auth import RECENT_HEADERS, KeyRing
from router.config.model import ClientKeyConfig
from router.errors import Unauthenticated


def key_config(name: str, secret: str, models: tuple[str, ...] = ("*",)) -> ClientKeyConfig:
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return ClientKeyConfig(name=name, key_sha256=digest, models=models)


def test_a_remembered_header_names_the_same_key_as_the_hash_did() -> None:
    ring = KeyRing([key_config("alice", "sk-alice"), key_config("bob", "sk-bob")])
    first = ring.authenticate("Bearer sk-alice")
    assert ring.remembered == 1
    assert ring.authenticate("Bearer sk-alice") is first
    assert ring.authenticate("bearer  sk-bob ").name == "bob"  # a variant is its own entry
    assert ring.remembered == 2


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Basic sk-alice", "Bearer sk-alic", "Bearer sk-alice2", "sk-alice"]
)
def test_a_refused_header_is_refused_every_time_and_never_remembered(header: str) -> None:
    ring = KeyRing([key_config("alice", "sk-alice")])
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            ring.authenticate(header)
    assert ring.remembered == 0


def test_the_memory_is_bounded_however_many_variants_a_key_holder_sends() -> None:
    ring = KeyRing([key_config("alice", "sk-alice")])
    for padding in range(RECENT_HEADERS * 2 + 1):
        assert ring.authenticate("Bearer sk-alice" + " " * padding).name == "alice"
        assert ring.remembered <= RECENT_HEADERS
    assert ring.authenticate("Bearer sk-alice").name == "alice"  # still right after starting over


def test_replace_forgets_removed_keys_and_serves_changed_ones_anew() -> None:
    ring = KeyRing([key_config("alice", "sk-alice"), key_config("bob", "sk-bob")])
    old = ring.authenticate("Bearer sk-alice")
    ring.authenticate("Bearer sk-bob")
    ring.replace([key_config("alice", "sk-alice", models=("sora-2",))])
    assert ring.remembered == 0
    with pytest.raises(Unauthenticated):
        ring.authenticate("Bearer sk-bob")
    new = ring.authenticate("Bearer sk-alice")
    assert new is not old and new.models == frozenset({"sora-2"})
