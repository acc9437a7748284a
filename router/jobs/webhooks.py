"""Webhooks: a job that settles becomes events in the outbox; a worker delivers them, at least
once, signed as Standard Webhooks.

A job settling is heard on the job events (``app[keys.EVENTS]``: every instance of a fleet hears
every job), and the job is read (from memory when it is settled there, else from the store).
Targets of a settled job: its key's ``webhook_url`` (for the event types the key chose) and the
``callback_url`` its create named (``notify_hook`` in the relay dialect). Each target gets one
event, ``{id: "evt_...", object: "event", created_at, type, data: {id}}`` in OpenAI's shape,
written to the outbox (``router.store.outbox``) before any attempt; the outbox makes one event
per job, type and URL however often and by however many instances the job is heard settling. At
start, each key's jobs that settled within ``give_up_after`` are walked once and any event not
in the outbox is added, so a crash between a job's settling and its event's insert loses
nothing.

The worker claims due events, each leased for ``webhooks.lease`` and the lease renewed while its
attempt runs (an attempt whose lease cannot be kept is called off), so across the whole fleet
one instance at a time sends an event; when that instance dies, the event is due again for any
other once the lease lapses. It POSTs each with ``webhook-id`` (the event id, stable across
retries), ``webhook-timestamp`` and ``webhook-signature`` (``v1,`` + base64 HMAC-SHA256 over
``id.timestamp.body`` with the key's ``whsec_`` secret; the SDK's
``client.webhooks.verify_signature`` accepts it). A 2xx is delivered; anything else is tried
again after ``first_delay * factor ** attempts`` (at most ``max_delay``, times a random factor
within ``1 +- jitter``) until ``give_up_after`` from the event's making. Callbacks go only to
public addresses unless ``webhooks.allow_private_addresses`` (names are judged by the addresses
they resolve to, at connect time).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import secrets
import socket
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from monitoring.metrics import Metrics
from providers.addresses import is_public
from router.config.live import LiveConfig
from router.config.model import ClientKeyConfig
from router.config.webhooks import secret_key
from router.events.base import JobEvents, Subscription, SubscriptionLagged
from router.fleet.bus import raise_if_cancelling
from router.jobs.views import Views
from router.jsonio import dumps
from router.records.job import Job, JobState
from router.store.base import owned_since
from router.store.outbox import OutboxEvent, WebhookOutbox

log = logging.getLogger(__name__)

BATCH = 64  # events claimed at once
_SETTLED = frozenset({JobState.COMPLETED.value, JobState.FAILED.value})  # statuses of a settle
IDLE = 1.0  # seconds between looks at the outbox when nothing woke the worker


def event_type(job: Job) -> str | None:
    if job.state is JobState.COMPLETED:
        return "video.completed"
    return "video.failed" if job.state is JobState.FAILED else None


def callback_refusal(url: str, allow_private: bool) -> str | None:
    """Why ``url`` cannot be a callback (checked at request time), or None."""
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host or len(url) > 2048:
        return "must be an http(s) URL of at most 2048 characters"
    host = parsed.host
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = False
    else:
        literal = True
    if not allow_private and (host == "localhost" or (literal and not is_public(host))):
        return "must not point at a loopback, link-local or private address"
    return None


class SettledJobs(Protocol):
    """What webhooks read of the job store (``router.store.base.JobStore`` has it)."""

    async def read(self, job_id: str) -> Job | None: ...
    async def page(
        self, owner: str, *, after: str | None, limit: int, order: str
    ) -> tuple[list[Job], bool]: ...


class LeaseLost(Exception):
    """An event's lease could not be renewed while its delivery ran."""


class PublicResolver(AbstractResolver):
    """The default resolver, refusing names that resolve to a non-public address."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if any(not is_public(r["host"]) for r in found):
            raise OSError(f"{host} resolves to a non-public address; callbacks may not go there")
        return found

    async def close(self) -> None:
        await self._inner.close()


class Webhooks:
    """Turns settled jobs into outbox events and delivers them."""

    def __init__(
        self,
        *,
        outbox: WebhookOutbox,
        config: LiveConfig,
        store: SettledJobs,
        events: JobEvents,
        metrics: Metrics,
        clock: Callable[[], float],
        rng: random.Random | None = None,
        views: Views | None = None,
    ) -> None:
        """``views``: the jobs this process holds in memory (``app[keys.VIEWS]``), read for a
        job heard settling before the store is."""
        self._outbox = outbox
        self._views = views
        self._config = config
        self._store = store
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._settings = config.current.webhooks
        self._changes: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- events ------------------------------------------------------------------------------

    async def listen(self, changes: Subscription) -> None:
        """Queue the events of every job that settles, until the job events end (shutdown).

        ``changes`` is a subscription to every job, taken before the start-up ``backfill`` so
        that no settle falls between the two. In a fleet every instance hears every settle and
        queues its events; the outbox keeps one per job and target, whoever comes first. A
        subscription that falls behind is replaced, and the backfill finds what it missed."""
        while True:
            try:
                async with changes:
                    async for change in changes:
                        if change.status in _SETTLED:
                            await self._heard(change.id)
                return
            except SubscriptionLagged:
                log.warning("webhooks: fell behind the job events; checking recent jobs again")
                changes = self._events.subscribe()
                await self._backfill_logged()

    async def _catch_up(self, changes: Subscription) -> None:
        """The start-up backfill (in the background: walking days of jobs in a fleet's store
        must not hold up readiness), then ``listen``."""
        await self._backfill_logged()
        await self.listen(changes)

    async def _heard(self, job_id: str) -> None:
        try:
            job = self._settled_view(job_id) or await self._store.read(job_id)
            if job is not None:  # deleted meanwhile: nobody is told of a job that is gone
                await self.settled(job)
        except Exception:  # the next start's backfill (here or anywhere) adds it
            raise_if_cancelling()  # a cancel redis-py turned into an error ends the listener
            log.exception("webhooks: job %s: its events could not be queued", job_id)

    def _settled_view(self, job_id: str) -> Job | None:
        """The job from memory if it is settled there: what ``settled`` reads of it (owner,
        state, callback) is final then, so it needs neither a store read nor a copy (the copy
        of every job settling was ~3% of a create's CPU when renders finish at once, issue 21).
        A view still unsettled may be older than the event heard: the store is read then."""
        view = None if self._views is None else self._views.get(job_id)
        return view if view is not None and view.state.finished else None

    async def _backfill_logged(self) -> None:
        try:
            await self.backfill()
        except Exception:
            log.exception("webhooks: checking recent jobs for missing events failed")

    async def settled(self, job: Job) -> int:
        """Add the events of a settled ``job`` to the outbox; how many were new."""
        kind = event_type(job)
        if kind is None:
            return 0
        added = 0
        for url in self._targets(job, kind):
            event_id = "evt_" + secrets.token_hex(16)
            body = {
                "id": event_id,
                "object": "event",
                "created_at": int(self._clock()),
                "type": kind,
                "data": {"id": job.id},
            }
            event = OutboxEvent(event_id, job.id, kind, url, job.owner, dumps(body), self._clock())
            added += await self._outbox.add(event)
        if added:
            self._wake.set()
        return added

    async def backfill(self) -> int:
        """Add any missing event of jobs settled within ``give_up_after`` (at start)."""
        oldest = self._clock() - self._settings.give_up_after
        added = 0
        for key in self._config.current.keys:
            async for job in owned_since(self._store, key.name, oldest):
                if job.completed_at is not None and job.completed_at >= oldest:
                    added += await self.settled(job)
        return added

    def _targets(self, job: Job, kind: str) -> list[str]:
        urls = []
        key = self._key(job.owner)
        if key is not None and key.webhook_url and kind in key.webhook_events:
            urls.append(key.webhook_url)
        if job.callback_url and job.callback_url not in urls:
            urls.append(job.callback_url)
        return urls

    def _key(self, name: str) -> ClientKeyConfig | None:
        return next((k for k in self._config.current.keys if k.name == name), None)

    # -- delivery ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver due events until cancelled."""
        settings = self._settings
        slots = asyncio.Semaphore(settings.concurrency)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                raise_if_cancelling()  # a cancel redis-py swallowed without an error
                try:
                    await self._report()
                    due = await self._outbox.claim(self._clock(), settings.lease, BATCH)
                except Exception as exc:  # the store is down or slow: it comes back by itself
                    raise_if_cancelling()
                    # the class name only: a connection error's text may name the store's URL
                    log.warning("webhooks: the outbox did not answer (%s)", type(exc).__name__)
                    await asyncio.sleep(IDLE)
                    continue
                for event in due:
                    await slots.acquire()
                    task = asyncio.create_task(self._deliver(event, slots))
                    running.add(task)
                    task.add_done_callback(running.discard)
                if len(due) < BATCH:
                    raise_if_cancelling()
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel
                    # that stops this worker, and the shutdown waiting for it hangs
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(IDLE):
                            await self._wake.wait()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def start(self) -> None:
        """Listen for settles, add the events no instance queued while this one was down, and
        deliver."""
        self._changes = self._events.subscribe()  # before the backfill: no settle between
        self._tasks = [
            asyncio.create_task(self._catch_up(self._changes), name="webhook-events"),
            asyncio.create_task(self.run(), name="webhooks"),
        ]

    async def stop(self) -> None:
        """Stop listening and delivering (an attempt in flight is called off: its lease lapses
        and the event is due again, here after a restart or at another instance)."""
        if self._changes is not None:
            self._changes.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._session is not None:
            await self._session.close()

    async def _deliver(self, event: OutboxEvent, slots: asyncio.Semaphore) -> None:
        try:
            try:
                error = await self._attempt(event)
            except LeaseLost:
                log.warning("webhook %s: lost its lease; this attempt is called off", event.id)
                self._metrics.webhook_delivered("lease_lost")
                return
            now = self._clock()
            if error is None:
                await self._outbox.delivered(event, now)
                self._metrics.webhook_delivered("delivered")
                return
            delay = self.delay(event.attempts)
            if now + delay - event.created_at > self._settings.give_up_after:
                if await self._outbox.gave_up(event, now, error):
                    self._metrics.webhook_delivered("gave_up")
                    log.warning("webhook %s (job %s): gave up: %s", event.id, event.job_id, error)
            elif await self._outbox.failed(event, now + delay, error):
                self._metrics.webhook_delivered("retry")
                log.info("webhook %s: %s; next try in %.0fs", event.id, error, delay)
        except Exception:  # the store failed: the lease lapses and the event is due again
            log.exception("webhook %s: its outcome could not be recorded", event.id)
        finally:
            slots.release()

    async def _attempt(self, event: OutboxEvent) -> str | None:
        """One attempt while holding the event's lease (renewed every third of it); raises
        ``LeaseLost`` when the lease could not be kept (the attempt is called off: another
        instance may hold the event now, and two never send one event at once)."""
        lease = self._settings.lease
        sending = asyncio.create_task(self._post(event))
        try:
            while True:
                done, _ = await asyncio.wait({sending}, timeout=lease / 3)
                if done:
                    return sending.result()
                try:
                    held = await self._outbox.renew(event, self._clock() + lease)
                except Exception:
                    log.exception("webhook %s: its lease could not be renewed", event.id)
                    held = False
                if not held:
                    raise LeaseLost(event.id)
        finally:
            if not sending.done():
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sending

    def delay(self, attempts: int) -> float:
        """Seconds before the next try of an event that failed ``attempts + 1`` times."""
        s = self._settings
        base = min(s.first_delay * s.factor**attempts, s.max_delay)
        return base * self._rng.uniform(1 - s.jitter, 1 + s.jitter)

    async def _post(self, event: OutboxEvent) -> str | None:
        """One attempt; None on a 2xx, else why not."""
        headers = {"Content-Type": "application/json", "User-Agent": "sora-api-proxy-webhooks"}
        key = self._key(event.owner)
        if key is not None and key.webhook_secret:
            headers |= signed_headers(
                secret_key(key.webhook_secret), event.id, int(self._clock()), event.body
            )
        else:
            headers |= {"webhook-id": event.id, "webhook-timestamp": str(int(self._clock()))}
        try:
            async with self._client().post(
                event.url, data=event.body, headers=headers, allow_redirects=False
            ) as reply:
                await reply.read()
                return None if 200 <= reply.status < 300 else f"HTTP {reply.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return type(exc).__name__

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self._settings
            resolver: Any = None if s.allow_private_addresses else PublicResolver()
            connector = aiohttp.TCPConnector(resolver=resolver, limit=s.concurrency)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=s.timeout),
            )
        return self._session

    async def _report(self) -> None:
        depth, oldest = await self._outbox.pending()
        age = 0.0 if oldest is None else max(0.0, self._clock() - oldest)
        self._metrics.webhook_queue(depth, age)


def signed_headers(key: bytes, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The Standard Webhooks headers of one delivery attempt."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{digest}",
    }
