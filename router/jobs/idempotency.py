"""Idempotent creates: one job per client ``Idempotency-Key``, however often the request comes.

``Idempotency`` owns the creates in flight in this process: one future per ``(owner, key)``,
so a request that arrives while the first with its key is still creating waits for that
outcome instead of rendering a second time. Across processes the store decides: before any
upstream call the leader claims the key for the job id it is about to create
(``JobStore.claim_key``, atomic in the store), and of concurrent claims in a fleet exactly one
wins; the others read the winner's job once it is stored (polling every ``CLAIM_POLL`` for up
to ``CLAIM_WAIT``). A create that fails releases its claim. The record is made durable with
the job (``submit`` passes the claim on to the store's insert), so it survives a restart.

A key matches a request by a fingerprint of the normalised create (``CreateRequest``), not
of the raw body: the SDK's multipart boundary changes between retries, and both dialects
normalise to the same ``CreateRequest``.

Callers can rely on:

* same owner, key and fingerprint: the job the first request made (records last
  ``IDEMPOTENCY_TTL``);
* same owner and key, another fingerprint (create or remix): ``Conflict``, 409;
* the first request fails: its waiters get the same error, nothing is recorded, and a later
  request with the key tries again;
* keys are per owner (the client key's name): two clients' keys never collide.

It must not decide how a job is created (``submit`` does) nor touch SQLite.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from providers.base import Operation
from router import jsonio
from router.errors import Conflict, InvalidRequest
from router.records.job import Job, new_job_id
from router.records.request import CreateRequest
from router.store.base import IdempotencyClaim, JobStore

__all__ = ["HEADER", "Idempotency", "Remix", "fingerprint", "key_from"]

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII, as Stripe and others take it
_OFF_LOOP_BYTES = 1 << 20  # uploads larger than this are hashed on a worker thread
CLAIM_POLL = 0.05  # seconds between reads of a job another process claimed and is creating
CLAIM_WAIT = 120.0  # seconds to wait for it at most (placement takes less)


@dataclass(slots=True, frozen=True)
class Remix:
    """A remix as the fingerprint sees it."""

    source_id: str
    prompt: str


@dataclass(slots=True)
class _Flight:
    fingerprint: str
    outcome: asyncio.Future[Job]
    waiters: int = 0


# the claim to store with the job (None: no key), and the id the job must have
Submit = Callable[[IdempotencyClaim | None, str | None], Awaitable[Job]]


class _Abandoned(Exception):
    """The first request was cancelled: its waiters look again instead of sharing that."""


def key_from(headers: Mapping[str, str]) -> str | None:
    """The request's ``Idempotency-Key``: None when absent, a 400 when not 1-255 printable
    ASCII characters."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if _VALID_KEY.fullmatch(value) is None:
        raise InvalidRequest(
            f"'{HEADER}' must be 1 to 255 printable ASCII characters.",
            param=HEADER,
            code="invalid_value",
        )
    return value


async def fingerprint(request: CreateRequest | Remix) -> str:
    """A hash of what the request asks for; equal for retries of the same create."""
    parts: list[object]
    if isinstance(request, Remix):
        parts = ["remix", request.source_id, request.prompt]
    else:
        ref = request.input_reference
        image = None
        if ref is not None:
            image = [await _digest(ref.data), ref.filename, ref.content_type, ref.url]
        parts = ["create", request.model, request.prompt, request.size, request.seconds, image]
        if request.operation is not Operation.CREATE or request.characters:
            # only then: keys recorded before these fields existed keep matching plain creates
            source = request.source
            video = None if source is None else [await _digest(source.data), source.upstream_id]
            parts += [request.operation.value, request.segment_seconds, video]
            parts += [request.source_video_id, list(request.characters)]
    return hashlib.sha256(jsonio.dumps(parts)).hexdigest()


class Idempotency:
    """Runs a create at most once per ``(owner, key)``; see the module docstring."""

    __slots__ = ("_flights", "_store")

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._flights: dict[tuple[str, str], _Flight] = {}

    @property
    def waiting(self) -> int:
        """Requests now waiting for the outcome of a create with their key."""
        return sum(flight.waiters for flight in self._flights.values())

    def run(
        self,
        owner: str,
        key: str | None,
        request: CreateRequest | Remix,
        submit: Submit,
        job_id: str | None = None,
    ) -> Awaitable[Job]:
        """``submit``'s job; with a key, the job an earlier request with it made, if any.

        ``submit`` gets the claim to hand to the store's insert with the job and the job id
        claimed (both None without a key): ``job_id`` when given (the id the key's slot was
        admitted for), else a new one. Without a key this is ``submit``'s own awaitable: no
        coroutine of ours in between.
        """
        if key is None:
            return submit(None, None)
        return self._keyed(owner, key, request, submit, job_id)

    async def _keyed(
        self,
        owner: str,
        key: str,
        request: CreateRequest | Remix,
        submit: Submit,
        job_id: str | None,
    ) -> Job:
        slot = (owner, key)
        mark = await fingerprint(request)
        # no await from here to registering a flight: whoever finds no flight leads
        while (flight := self._flights.get(slot)) is not None:
            _same_request(flight.fingerprint, mark)
            flight.waiters += 1
            try:
                # shielded: a waiter that goes away must not cancel the others' outcome
                return await asyncio.shield(flight.outcome)
            except _Abandoned:
                continue
            finally:
                flight.waiters -= 1
        return await self._lead(IdempotencyClaim(owner, key, mark), submit, job_id)

    async def _lead(self, claim: IdempotencyClaim, submit: Submit, job_id: str | None) -> Job:
        slot = (claim.owner, claim.key)
        outcome: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self._flights[slot] = _Flight(claim.fingerprint, outcome)
        try:
            job = await self._claimed(claim, submit, job_id)
        except Exception as exc:
            outcome.set_exception(exc)
            raise
        except BaseException:
            outcome.set_exception(_Abandoned())
            raise
        else:
            outcome.set_result(job)
        finally:
            del self._flights[slot]
            if outcome.done() and not outcome.cancelled():
                outcome.exception()  # marks it retrieved: no "never retrieved" log without waiters
        return job

    async def _claimed(self, claim: IdempotencyClaim, submit: Submit, wanted: str | None) -> Job:
        """Claim the key for ``wanted`` (or a new id) and create, or the job of whoever holds
        the claim. An id that lost a claim was never used, so it may claim again."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + CLAIM_WAIT
        job_id = wanted or new_job_id()
        while True:
            record = await self._store.claim_key(claim, job_id)
            if record.job_id == job_id:
                try:
                    return await submit(claim, job_id)
                except BaseException:
                    # nothing was stored: a retry with the key may lead
                    await asyncio.shield(self._store.release_key(claim, job_id))
                    raise
            _same_request(record.fingerprint, claim.fingerprint)
            job = await self._store.read(record.job_id)
            if job is not None:
                return job
            if loop.time() > give_up:
                raise Conflict(
                    f"A request with this {HEADER} is still being created; retry later.",
                    param=HEADER,
                )
            await asyncio.sleep(CLAIM_POLL)  # its claimant (another process) is still creating


def _same_request(recorded: str, mark: str) -> None:
    if recorded != mark:
        raise Conflict(
            f"This {HEADER} was already used with a different request; "
            "send a new key for a new request.",
            param=HEADER,
        )


async def _digest(data: bytes | None) -> str | None:
    if data is None:
        return None
    if len(data) > _OFF_LOOP_BYTES:  # hashlib releases the GIL: the loop keeps serving
        return await asyncio.to_thread(_sha256, data)
    return _sha256(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
