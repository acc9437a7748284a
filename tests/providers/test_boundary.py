"""The upstream boundary's helpers: the reply cap's setting, ``segment``, the scrubber and the
address policy (issue 15; the end-to-end cases are in ``test_hostile_replies`` and
``tests/flows/test_hostile_upstream``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import pytest
from yarl import URL

from providers.addresses import AddressPolicy, ForbiddenAddress, GuardedResolver, is_public
from providers.base import BadUpstreamReply, Rejected
from providers.http import segment
from providers.openai import OpenAIVideosProvider
from providers.scrubber import CLEARED_MAX, REDACTED, WITHHELD, Scrubber
from tests.fake_upstream import ScriptedFactory


def test_segment_escapes_what_would_change_the_url() -> None:
    assert segment("video_1:a.b-c") == "video_1%3Aa.b-c"
    assert segment("a/b?c#d") == "a%2Fb%3Fc%23d"


async def test_the_cap_is_configurable_and_an_error_reply_is_cut(
    scripted: ScriptedFactory, adapters: Callable[..., Any]
) -> None:
    upstream = await scripted()
    long_error = {"error": {"message": "x" * 100_000, "code": "bad"}}
    upstream.reply("GET", "/v1/videos/v1", {"id": "v1", "status": "queued", "pad": "y" * 5000})
    upstream.reply("GET", "/v1/videos/v2", long_error, status=400)
    openai = adapters(OpenAIVideosProvider, f"{upstream.url}/v1", max_reply_bytes=4096)
    with pytest.raises(BadUpstreamReply):
        await openai.get("v1")
    with pytest.raises(Rejected) as caught:
        await openai.get("v2")
    assert len(str(caught.value)) < 3000  # read only the start; its text clipped


# -- the scrubber --------------------------------------------------------------------------------


def test_the_scrubber_finds_a_secret_in_its_encodings() -> None:
    secret = "sk-a/b+c=d&e"
    scrubber = Scrubber([secret])
    for form in (secret, quote(secret, safe=""), secret.upper(), '"sk-a\\/b+c=d&e"'):
        assert secret.lower() not in scrubber.scrub(f"key {form} here").lower()
    assert scrubber.scrub("sk-a%2fb%2Bc%3dd%26e") == REDACTED  # mixed-case escapes
    assert scrubber.scrub("nothing to see") == "nothing to see"


def test_a_secret_only_decoding_shows_withholds_the_text() -> None:
    scrubber = Scrubber(["sk-abcdefgh"])
    assert scrubber.scrub("key=%73%6B-abcdefgh") == WITHHELD


def test_client_keys_are_found_by_their_digest() -> None:
    client = "sk-client-key-77"
    digest = hashlib.sha256(client.encode()).hexdigest()
    scrubber = Scrubber(digests=[digest])
    assert scrubber.scrub(f"you sent {client}.") == f"you sent {REDACTED}."
    assert scrubber.scrub(f"hash {digest.upper()}") == f"hash {REDACTED}"
    assert scrubber.scrub("sk-client-key-770") == "sk-client-key-770"
    assert scrubber.scrub_json({"a": [client, 1, {client: None}]}) == {
        "a": [REDACTED, 1, {REDACTED: None}]
    }


def test_a_client_key_learnt_after_its_text_was_seen_is_still_found() -> None:
    """Tokens found to be no key are remembered (issue 21); learning a key forgets them."""
    client = "sk-client-key-78"
    scrubber = Scrubber(digests=[hashlib.sha256(b"another-key-000").hexdigest()])
    assert scrubber.scrub(f"you sent {client}") == f"you sent {client}"
    scrubber.learn(digests=[hashlib.sha256(client.encode()).hexdigest()])
    assert scrubber.scrub(f"you sent {client}") == f"you sent {REDACTED}"


def test_the_memory_of_cleared_tokens_is_bounded_and_keys_stay_found() -> None:
    client = "sk-client-key-79"
    scrubber = Scrubber(digests=[hashlib.sha256(client.encode()).hexdigest()])
    words = " ".join(f"word{n:08d}" for n in range(CLEARED_MAX + 10))
    assert scrubber.scrub(words) == words
    assert scrubber.scrub(words[:40]) == words[:40]  # remembered, and still no secret
    assert scrubber.scrub(f"{words[:40]} {client}") == f"{words[:40]} {REDACTED}"
    assert scrubber.cleared <= CLEARED_MAX


# -- the address policy --------------------------------------------------------------------------


def test_a_public_provider_fetches_only_public_addresses_of_its_hosts() -> None:
    policy = AddressPolicy("https://api.example.com/v1", ("cdn.example.net", "*.files.example"))
    policy.check(URL("https://api.example.com/x"))
    policy.check(URL("https://cdn.example.net/x.mp4"))
    policy.check(URL("https://eu.files.example/x.mp4"))
    for bad in (
        "https://evil.example/x",
        "https://files.example.evil/x",
        "file:///etc/passwd",
        "https://169.254.169.254/latest",
    ):
        with pytest.raises(ForbiddenAddress):
            policy.check(URL(bad))
    listed = AddressPolicy("https://api.example.com", ("10.0.0.5", "[::1]", "::ffff:127.0.0.1"))
    for bad in ("http://10.0.0.5/x", "http://[::1]/x", "http://[::ffff:127.0.0.1]/x"):
        with pytest.raises(ForbiddenAddress):
            listed.check(URL(bad))
    allowed = AddressPolicy("https://api.example.com", ("10.0.0.5",), allow_private=True)
    allowed.check(URL("http://10.0.0.5/x"))


def test_a_provider_on_a_private_address_may_fetch_private_addresses() -> None:
    policy = AddressPolicy("http://127.0.0.1:9000", ("127.0.0.2",))
    policy.check(URL("http://127.0.0.2/x.mp4"))
    assert not is_public("192.168.1.1") and is_public("8.8.8.8") and not is_public("bad")


async def test_the_resolver_refuses_a_listed_name_that_resolves_to_loopback() -> None:
    """Checked where it connects: a name is judged by the addresses it resolves to."""
    public = GuardedResolver(AddressPolicy("http://93.184.216.34", ("localhost",)))
    try:
        with pytest.raises(ForbiddenAddress):
            await public.resolve("localhost", 80)
        with pytest.raises(ForbiddenAddress):
            await public.resolve("unlisted.invalid", 80)
    finally:
        await public.close()
    local = GuardedResolver(AddressPolicy("http://localhost:9000", ("127.0.0.2",)))
    try:
        assert await local.resolve("localhost", 9000)
    finally:
        await local.close()
