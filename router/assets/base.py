"""The asset store seam: where finished videos are kept, whatever the upstream does.

``AssetStore`` is the small interface every backend implements (``router.assets.local``, a
directory; ``router.assets.s3``, S3-compatible object storage), and the contract suite in
``tests/contract/test_asset_store.py`` holds each of them to it. What a caller can rely on:

* ``put`` is all or nothing: the object becomes visible under its key only once every byte
  arrived (a temporary name renamed into place, or a multipart upload completed), so a process
  killed mid-copy never leaves a half-written object that ``stat`` or ``read`` would see;
* ``read`` streams a byte range in chunks, so memory stays flat whatever the object's size;
* ``delete`` of a missing key is not an error; ``objects`` lists what is stored, for
  retention and for fleets that share one bucket.

Keys are ``videos/<job id>/<variant>``: ``asset_key`` builds them and ``job_of`` reads them
back. Backends know nothing of jobs, variants or HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_PREFIX = "videos/"

# what each variant is stored and served as
CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}


@dataclass(slots=True, frozen=True)
class StoredObject:
    """One object in a backend: its key, its size in bytes, when it was written."""

    key: str
    size: int
    modified: float  # unix seconds


class AssetStoreError(Exception):
    """A backend failed (I/O, the object service); the message never holds a credential."""


class AssetStore(Protocol):
    """Whole objects by key, written all or nothing and read by byte range."""

    async def open(self) -> None:
        """Get ready (make the directory, check the bucket); clear what a crash left."""
        ...

    async def close(self) -> None: ...

    async def put(self, key: str, chunks: AsyncIterator[bytes], content_type: str) -> int:
        """Store what ``chunks`` yields under ``key``, replacing any object there; the size.

        Nothing is visible under ``key`` until the last chunk is written; if ``chunks`` raises
        (or the write fails) the old object, if any, stays and the error propagates.
        """
        ...

    async def stat(self, key: str) -> StoredObject | None: ...

    def read(self, key: str, start: int, stop: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` up to ``stop`` of the object, in chunks; ``AssetStoreError`` if gone."""
        ...

    async def delete(self, key: str) -> None: ...

    def objects(self) -> AsyncIterator[StoredObject]:
        """Every stored object, in no particular order."""
        ...

    def local_path(self, key: str) -> Path | None:
        """The object's file when the backend is a local directory (the sendfile path)."""
        ...


def asset_key(job_id: str, variant: str) -> str:
    return f"{_PREFIX}{job_id}/{variant}"


def job_of(key: str) -> str | None:
    """The job id in a key made by ``asset_key``; None for any other key."""
    if not key.startswith(_PREFIX):
        return None
    job_id, _, variant = key[len(_PREFIX) :].partition("/")
    return job_id if job_id and variant in CONTENT_TYPES else None
