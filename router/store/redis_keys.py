"""Where the fleet's job data lives in Redis: key names, hash tags, the event stream format.

Jobs are spread over ``SHARDS`` shards by a hash of their id, and every key of one shard
carries the shard's hash tag (``{sora:jN}``): a job, its input reference, the shard's set of
unsettled jobs and its event stream. So the script that writes a job and appends its
``JobChanged`` touches one Redis Cluster slot: the write and its event happen together or not
at all. An owner's list, a provider's render holders and its poll plan have a tag each and
are written by single-key commands, inside the job's script on one Redis and beside it on a
Cluster (``router.store.redis``). Sixteen shards spread over a cluster's masters while keeping
a reader of every stream cheap.

The stream entry is four fields (``id``, ``v`` version, ``s`` status, ``p`` progress);
``router.events.redis`` reads what the store writes, so the codec lives here, once.
"""

from __future__ import annotations

import hashlib
import zlib

from router.records.event import JobChanged

__all__ = [
    "EVENTS_MAXLEN",
    "SHARDS",
    "decode_event",
    "encode_event",
    "events_key",
    "holders_key",
    "idempotency_key",
    "input_key",
    "job_key",
    "owner_key",
    "plan_key",
    "plan_marks_key",
    "probe_key",
    "shard_of",
    "unsettled_key",
]

SHARDS = 16
# entries kept per shard's stream (approximately): how far a reader that lost its connection
# can catch up; about 100 bytes each, so 16 shards hold ~16 MB at most
EVENTS_MAXLEN = 10_000


def shard_of(job_id: str) -> int:
    """The shard of ``job_id``: stable across processes and restarts."""
    return zlib.crc32(job_id.encode()) % SHARDS


def _tag(shard: int) -> str:
    return f"{{sora:j{shard}}}"


def job_key(job_id: str) -> str:
    """A job: a hash of ``v`` (version), ``b`` (the JSON record), ``o`` (owner), ``k`` (the
    idempotency key naming it, or empty)."""
    return f"{_tag(shard_of(job_id))}:job:{job_id}"


def input_key(job_id: str) -> str:
    """A job's input reference, in the job's shard (written with it)."""
    return f"{_tag(shard_of(job_id))}:input:{job_id}"


def unsettled_key(shard: int) -> str:
    """The ids of the shard's jobs not settled yet (a set)."""
    return f"{_tag(shard)}:unsettled"


def owner_key(owner: str) -> str:
    """An owner's jobs, a sorted set by ``created_at`` (ties by id): one slot per owner."""
    return f"{{sora:o:{owner}}}:jobs"


def holders_key(provider: str) -> str:
    """Which job holds each upstream render of ``provider`` (a hash upstream id -> job id)."""
    return f"{{sora:h:{provider}}}:holders"


def idempotency_key(owner: str, key: str) -> str:
    """One ``Idempotency-Key`` of one owner; hashed, so any key text makes a safe name."""
    digest = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()
    return f"sora:idem:{digest}"


def plan_key(shard: str) -> str:
    """The due times of a poll plan shard (a provider): a sorted set job id -> due
    (``router.fleet.redis_plan``; the store writes a new job's first entry with its insert)."""
    return f"sora:{{poll:{shard}}}:due"


def plan_marks_key(shard: str) -> str:
    """The progress marks of a poll plan shard (a hash job id -> ``mark@since``), in its
    slot."""
    return f"sora:{{poll:{shard}}}:marks"


def probe_key(shard: int) -> str:
    """A throwaway value ``JobStore.probe_write`` sets in ``shard``'s slot (so a probe of
    every shard reaches every master of a cluster)."""
    return f"{_tag(shard)}:write-probe"


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
