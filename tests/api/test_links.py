"""Signed content links: exact shape, any change refused, expiry, and the secret's lifetime."""

from __future__ import annotations

import math
from urllib.parse import parse_qs, urlsplit

import pytest

from router.access.links import LinkSigner
from router.config.model import ServerConfig
from router.errors import Forbidden
from tests.clock import ManualClock

JOB = "video_" + "ab" * 24
NOW = 1_700_000_000.5


def signer(clock: ManualClock, secret: str = "s3cret", ttl: float = 60.0) -> LinkSigner:
    server = ServerConfig(public_url="https://videos.example", link_secret=secret, link_ttl=ttl)
    return LinkSigner(server, clock)


def parts(link: str) -> tuple[str, str, str]:
    url = urlsplit(link)
    query = parse_qs(url.query)
    return url.path.rsplit("/", 1)[1], query["expires"][0], query["sig"][0]


def test_a_link_names_the_job_an_expiry_and_a_hex_signature() -> None:
    link = signer(ManualClock(NOW)).link(JOB)
    assert link.startswith(f"https://videos.example/v2/videos/content/{JOB}?")
    job_id, expires, sig = parts(link)
    assert (job_id, int(expires)) == (JOB, math.ceil(NOW + 60))
    assert len(sig) == 64 and int(sig, 16) >= 0


def test_a_fresh_link_verifies() -> None:
    links = signer(ManualClock(NOW))
    links.verify(*parts(links.link(JOB)))


@pytest.mark.parametrize(
    "change",
    ["sig", "job", "expires", "expires_padded", "no_sig", "no_expires", "non_ascii_sig"],
)
def test_any_change_is_refused(change: str) -> None:
    links = signer(ManualClock(NOW))
    job_id, expires, sig = parts(links.link(JOB))
    forged: dict[str, tuple[str, str | None, str | None]] = {
        "sig": (job_id, expires, sig[::-1]),
        "job": ("video_" + "cd" * 24, expires, sig),
        "expires": (job_id, str(int(expires) + 86400), sig),
        "expires_padded": (job_id, "0" + expires, sig),
        "no_sig": (job_id, expires, None),
        "no_expires": (job_id, None, sig),
        "non_ascii_sig": (job_id, expires, "é" * 64),
    }
    with pytest.raises(Forbidden) as caught:
        links.verify(*forged[change])
    assert caught.value.code == "invalid_link"


def test_a_link_expires_after_its_ttl() -> None:
    clock = ManualClock(NOW)
    links = signer(clock, ttl=60)
    job_id, expires, sig = parts(links.link(JOB))
    clock.now = NOW + 59
    links.verify(job_id, expires, sig)
    clock.now = NOW + 61
    with pytest.raises(Forbidden) as caught:
        links.verify(job_id, expires, sig)
    assert caught.value.code == "link_expired"


def test_a_configured_secret_survives_a_restart_and_a_random_one_does_not() -> None:
    clock = ManualClock(NOW)
    link = parts(signer(clock, secret="kept").link(JOB))
    signer(clock, secret="kept").verify(*link)
    random_link = parts(signer(clock, secret="").link(JOB))
    with pytest.raises(Forbidden):
        signer(clock, secret="").verify(*random_link)


def test_the_repr_never_shows_the_secret() -> None:
    assert "s3cret" not in repr(signer(ManualClock(NOW)))
