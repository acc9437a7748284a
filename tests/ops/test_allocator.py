"""Memory that downloads free stays in the C heap for the next ones (no fresh page faults),
unless the operator tunes glibc's allocator through the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from router.runtime.allocator import TRIM_THRESHOLD, keep_freed_memory

PIECE = 256_000  # what uvloop hands over per socket read, and aiohttp's parser copies out
PIECES = 64  # in flight at once: 16 MB, below TRIM_THRESHOLD

# Three bursts of pieces held at once and freed, as downloads do; prints the page faults of the
# last burst. b"\x01" * n writes every page, as a socket read into the piece does.
BURSTS = f"""
import resource, sys
from router.runtime.allocator import keep_freed_memory
if sys.argv[1] == "kept" and not keep_freed_memory({{}}):
    sys.exit("not set")
def burst():
    pieces = [b"\\x01" * {PIECE} for _ in range({PIECES})]
    del pieces
burst()
burst()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
burst()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="mallopt's thresholds are glibc's",
)


def faults_of_a_burst(mode: str) -> int:
    """Page faults of a fresh interpreter's third burst (``kept``: after keep_freed_memory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUN"))}
    done = subprocess.run(
        [sys.executable, "-c", BURSTS, mode],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env=env,
    )
    return int(done.stdout)


@glibc_only
def test_what_a_burst_of_downloads_freed_is_reused_by_the_next_without_page_faults() -> None:
    assert PIECE * PIECES < TRIM_THRESHOLD
    pages = PIECE * PIECES // 4096
    # glibc's own thresholds hand the freed pieces back and fault them in again each burst
    assert faults_of_a_burst("default") > pages // 2
    assert faults_of_a_burst("kept") < pages // 20


@pytest.mark.parametrize(
    "environ",
    [
        {"MALLOC_TRIM_THRESHOLD_": "131072"},
        {"MALLOC_MMAP_THRESHOLD_": "65536"},
        {"MALLOC_TOP_PAD_": "0"},
        {"MALLOC_MMAP_MAX_": "0"},
        {"GLIBC_TUNABLES": "glibc.rtld.nns=2:glibc.malloc.trim_threshold=131072"},
    ],
)
def test_an_operators_own_malloc_settings_are_left_as_they_are(environ: dict[str, str]) -> None:
    assert keep_freed_memory(environ) is False


@glibc_only
def test_other_tunables_do_not_stop_the_thresholds_being_set() -> None:
    assert keep_freed_memory({"GLIBC_TUNABLES": "glibc.rtld.nns=2"}) is True
