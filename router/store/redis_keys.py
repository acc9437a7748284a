"""Where the fleet's job data lives in Redis: key names, hash tags, the event stream format.

Jobs are spread over ``SHARDS`` shards by a hash of their id, and every key of one shard
carries the shard's hash tag (``{sora:jN}``), so a script that writes a job and appends its
``JobChanged`` to the shard's event stream touches one Redis Cluster slot: the write and its
event happen together or not at all. Sixteen shards spread over a cluster's masters while
keeping a reader of every stream cheap.

The stream entry is four fields (``id``, ``v`` version, ``s`` status, ``p`` progress);
``router.events.redis`` reads what the store writes, so the codec lives here, once.
"""

from __future__ import annotations

import zlib

from router.records.event import JobChanged

__all__ = ["EVENTS_MAXLEN", "SHARDS", "decode_event", "encode_event", "events_key", "shard_of"]

SHARDS = 16
# entries kept per shard's stream (approximately): how far a reader that lost its connection
# can catch up; about 100 bytes each, so 16 shards hold ~16 MB at most
EVENTS_MAXLEN = 10_000


def shard_of(job_id: str) -> int:
    """The shard of ``job_id``: stable across processes and restarts."""
    return zlib.crc32(job_id.encode()) % SHARDS


def _tag(shard: int) -> str:
    return f"{{sora:j{shard}}}"


def events_key(shard: int) -> str:
    """The stream of ``JobChanged`` entries of the jobs of ``shard``."""
    return f"{_tag(shard)}:events"


_Field = bytes | bytearray | memoryview | str | int | float  # what redis-py takes


def encode_event(event: JobChanged) -> dict[_Field, _Field]:
    return {"id": event.id, "v": event.version, "s": event.status, "p": event.progress}


def decode_event(fields: dict[bytes, bytes]) -> JobChanged:
    return JobChanged(
        fields[b"id"].decode(), int(fields[b"v"]), fields[b"s"].decode(), int(fields[b"p"])
    )
