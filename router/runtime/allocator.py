"""Keeps memory that downloads free in the C heap for the next ones, instead of the kernel.

A download streamed from an upstream passes through as bytes objects of up to 256 KB (uvloop
reads that much at a time, and aiohttp's parser copies the body out of it), which CPython takes
from the C allocator. glibc's defaults suit a program whose large blocks are rare: a block
freed from its mmap raises the mmap threshold to that block's size (~256 KB here) and the trim
threshold to twice that, so as soon as 32 downloads at once leave half a megabyte free at the
top of the heap, ``free`` gives it back to the kernel (``brk``), and the next download's pieces
fault fresh zeroed pages in again. Relaying 1 MiB cost about 240 page faults and twice the
system time of a run without them; the kernel's page clearing and faulting was 15-20% of the
proxy's CPU and the main reason it cost more than the pass-through (``bench/README.md``, "Issue
21, third pass: content").

``keep_freed_memory`` sets fixed thresholds with ``mallopt``: blocks under ``MMAP_THRESHOLD``
come from the heap, and the heap's free top is handed back only beyond ``TRIM_THRESHOLD``. So
the process keeps at most that much freed memory for reuse; memory in use is unchanged (a
download still holds only the pieces in flight). The settings are process-wide and cannot be
undone (glibc has no way back to its sliding thresholds), which is harmless: they only move the
point where memory goes back. An operator who tunes glibc's malloc through the environment
(``MALLOC_*_`` variables, ``GLIBC_TUNABLES`` with ``glibc.malloc.``) keeps their settings (any
one of them also stops glibc's sliding, so set the trim and the mmap threshold together); on
another C library this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

MMAP_THRESHOLD = 4 * 2**20  # bytes: blocks below this come from the heap, never a fresh mmap
# bytes: free heap top kept for reuse before any goes back. The most glibc's own sliding
# threshold reaches (twice its 32 MiB mmap ceiling); 32 MiB still let 128 downloads at once
# fault 70-130 pages a MiB in again, 64 MiB 0-4 (bench/README.md).
TRIM_THRESHOLD = 64 * 2**20
# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_OPERATOR_VARIABLES = (
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

log = logging.getLogger(__name__)


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> bool:
    """Set the thresholds above on glibc; whether they were set (False: an operator's own
    malloc settings in ``environ``, or not glibc)."""
    if any(name in environ for name in _OPERATOR_VARIABLES) or "glibc.malloc." in environ.get(
        "GLIBC_TUNABLES", ""
    ):
        log.debug("malloc: the environment tunes glibc's allocator; left as it is")
        return False
    if not _glibc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # a platform without the name, or a C library without it
        return False


async def kept_heap(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the allocator's thresholds set at start (nothing to undo at stop)."""
    keep_freed_memory()
    yield
