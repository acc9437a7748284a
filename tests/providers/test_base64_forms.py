"""Secrets inside base64 text (``providers.base64_forms`` and the scrubber using it): found at
every offset in the encoded data, in both alphabets, padded or not, and redacted so that no
reading of what is left gives the secret back; ordinary base64 is left alone.

The cases with the secret at offset 1 or 2, and every client key in base64, fail on the code
before: it knew only the base64 of the secret on its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.base64_forms import MIN_CORE, cores, decoded
from providers.scrubber import KEY_CHARACTERS, MIN_SECRET, REDACTED, Scrubber
from tests.hostile_upstream import recoverable

KEY = "sk-upstream-3f9a1c77"
CLIENT = "sk-client-7d41e0aa"
EXAMPLES = 300


def encode(data: bytes, urlsafe: bool, padded: bool) -> str:
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    return encoded if padded else encoded.rstrip("=")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.parametrize("prefix", [b"", b"u", b"us", b"use", b"user:", b"user:\xff"])
@pytest.mark.parametrize("suffix", [b"", b"!", b"~>"])
@pytest.mark.parametrize("urlsafe", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_a_secret_in_base64_is_found_wherever_it_sits(
    prefix: bytes, suffix: bytes, urlsafe: bool, padded: bool
) -> None:
    """Offsets 0, 1 and 2 (mod 3) in the encoded data, both alphabets, with and without ``=``."""
    text = f"Authorization: Basic {encode(prefix + KEY.encode() + suffix, urlsafe, padded)} (echo)"
    scrubbed = Scrubber([KEY]).scrub(text)
    assert REDACTED in scrubbed
    assert scrubbed.startswith("Authorization: Basic ") and scrubbed.endswith(" (echo)")
    assert not recoverable(KEY, scrubbed)


def learnt(key: str) -> Scrubber:
    return Scrubber([key])


def relearnt(key: str) -> Scrubber:
    """A scrubber that learnt ``key``, then more (as on a reload)."""
    scrubber = Scrubber([key])
    scrubber.learn(["adm-6c1f0e2b9d8a7f3e"], [digest(CLIENT)])
    return scrubber


def at_offset_one(key: str) -> str:
    return base64.b64encode(b"u" + key.encode() + b"!!").decode()


@pytest.mark.parametrize("scrubber", [learnt, relearnt])
@pytest.mark.parametrize("slash", ["/", "\\/"])
def test_the_characters_either_side_of_the_core_go_with_it(
    scrubber: Callable[[str], Scrubber], slash: str
) -> None:
    """19 bytes at offset 1: character 1 holds 4 of the key's first bits and character 26 four
    of its last; both are redacted, the prefix's own character is kept. The same with every
    ``/`` JSON-escaped (the key is one whose core has a ``/``)."""
    keys = (f"sk-{'x' * n}?{'y' * (15 - n)}" for n in range(16))  # "?" ends in 6 bits set
    key = next(k for k in keys if "/" in at_offset_one(k)[2:26])
    encoded = at_offset_one(key)
    scrubbed = scrubber(key).scrub(f"Basic {encoded.replace('/', slash)}")
    assert scrubbed == f"Basic {encoded[:1]}{REDACTED}{encoded[27:]}".replace("/", slash)


def test_a_client_key_in_base64_is_found_by_its_digest() -> None:
    """The whole base64 run goes: the proxy cannot tell where in it the key was."""
    scrubber = Scrubber(digests=[digest(CLIENT)])
    basic = base64.b64encode(f"alice:{CLIENT}".encode()).decode()
    glued = "tok_" + base64.urlsafe_b64encode(f"\x00{CLIENT}.".encode()).decode().rstrip("=")
    assert scrubber.holds_secret(f"Basic {basic}")
    scrubbed = scrubber.scrub(f"Basic {basic}; trace {glued}.")
    assert scrubbed == f"Basic {REDACTED}; trace {REDACTED}."


def test_a_secret_found_twice_in_one_text_is_redacted_twice() -> None:
    """Remembered words never hide a second, different occurrence of a secret."""
    scrubber = Scrubber([KEY], [digest(CLIENT)])
    clean = "video_68d7512d07848190b3e45da0ecbebcde failed"
    assert scrubber.scrub(clean) == clean
    once = base64.b64encode(f"x{KEY}".encode()).decode()
    client = base64.b64encode(f"c:{CLIENT}".encode()).decode()
    scrubbed = scrubber.scrub(f"{clean}: {once} {client} {once}")
    assert scrubbed.count(REDACTED) == 3
    assert not recoverable(KEY, scrubbed) and not recoverable(CLIENT, scrubbed)


def test_every_core_is_at_least_min_core_long_and_short_secrets_have_none() -> None:
    """8 bytes (``MIN_SECRET``) give 3 cores of exactly 10 characters (60 bits); a shorter
    secret's cores would turn up in random base64 (an image, an id), so it has none."""
    assert MIN_SECRET == 8 and MIN_CORE == 10
    assert sorted(map(len, cores("abcdefgh"))) == [10, 10, 10]
    assert all(len(core) >= MIN_CORE for n in range(8, 40) for core in cores("k" * n))
    assert cores("abcd") == set()
    short = "abcdefg"  # 7 characters: not learnt at all
    encoded = base64.b64encode(f"x{short}y".encode()).decode()
    assert Scrubber([short]).scrub(encoded) == encoded


def test_ordinary_base64_and_words_are_left_alone() -> None:
    """A data URL, an id, a JSON body: nothing in them is a secret, nothing changes."""
    scrubber = Scrubber([KEY, "adm-6c1f0e2b9d8a7f3e"], [digest(CLIENT)])
    png = base64.b64encode(bytes(range(256)) * 4).decode()
    texts = [
        f"data:image/png;base64,{png}",
        "video_68d7512d07848190b3e45da0ecbebcde004da08e1e0678d5",
        '{"id": "video_h1", "status": "failed", "error": {"code": "render_failed"}}',
        base64.b64encode(b"user:not-the-key-at-all").decode(),
    ]
    for text in texts:
        assert scrubber.scrub(text) == text


def test_decoded_reads_a_run_from_each_of_its_first_four_characters() -> None:
    run = "ab_" + base64.urlsafe_b64encode(b"\xfbhello world").decode()
    assert b"hello world" in decoded(run)
    assert decoded(run).count(b"\n") == 3


# -- properties ----------------------------------------------------------------------------------

secrets = st.text(st.characters(codec="utf-8"), min_size=MIN_SECRET, max_size=40)
around = st.binary(max_size=12)
words = st.text(st.sampled_from(" .,:;()[]\"'aZ9+/-_="), max_size=6)


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(
    key=secrets,
    prefix=around,
    suffix=around,
    urlsafe=st.booleans(),
    padded=st.booleans(),
    before=words,
    after=words,
)
def test_no_base64_of_a_secret_survives_with_the_secret_readable(
    key: str, prefix: bytes, suffix: bytes, urlsafe: bool, padded: bool, before: str, after: str
) -> None:
    """base64 of prefix + key + suffix, in any text: no reading of the output gives the key."""
    text = before + encode(prefix + key.encode() + suffix, urlsafe, padded) + after
    assert not recoverable(key, Scrubber([key]).scrub(text))


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(
    key=st.text(st.sampled_from(KEY_CHARACTERS), min_size=MIN_SECRET, max_size=40),
    prefix=around.map(lambda data: data + b":" if data else data),
    suffix=around.map(lambda data: b"." + data if data else data),
    urlsafe=st.booleans(),
    padded=st.booleans(),
    before=words,
)
def test_no_base64_of_a_client_key_survives_with_the_key_readable(
    key: str, prefix: bytes, suffix: bytes, urlsafe: bool, padded: bool, before: str
) -> None:
    """The same for a key held only as its digest, standing apart from other key characters
    in the decoded bytes (as a token, the only way a digest can find it)."""
    text = before + encode(prefix + key.encode() + suffix, urlsafe, padded)
    assert not recoverable(key, Scrubber(digests=[digest(key)]).scrub(text))


@settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True)
@given(key=secrets, data=st.binary(min_size=1, max_size=200), urlsafe=st.booleans())
def test_base64_without_the_secret_comes_back_unchanged(
    key: str, data: bytes, urlsafe: bool
) -> None:
    text = f"blob {encode(data, urlsafe, padded=True)} end"
    assert Scrubber([key], [digest(key)]).scrub(text) == text
