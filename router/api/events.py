"""``GET /v1/videos/{id}/events``: a job's changes as server-sent events (the key's own jobs).

The stream opens with the job's current state, then sends every change until the job settles,
then ends. Changes are noticed by watching the job's ``version`` in the store's memory every
``WATCH`` seconds (a dictionary read; the in-process path: this instance's store sees every
change of the jobs it serves). Each event is the whole Video object at one version::

    id: <the job's version>
    event: video
    data: <the Video object>

A client that reconnects with ``Last-Event-ID`` gets the current state at once if it changed
since that version (a state, not a log: it subsumes every change in between), then the rest.
A comment line every ``HEARTBEAT`` seconds keeps idle connections (and proxies) open.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from router import appkeys as keys
from router.api.openai import video_body
from router.api.requests import owned_job
from router.api.stamp import stamp
from router.records.job import Job

HEARTBEAT = 15.0
WATCH = 0.1  # seconds between looks at the job
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


async def video_events(request: web.Request) -> web.StreamResponse:
    job = owned_job(request)
    sent = _last_event_id(request)
    store = request.app[keys.STORE]
    response = web.StreamResponse(headers=HEADERS)
    stamp(request, response)  # a stream sends its own headers: request id and CORS first
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(ConnectionResetError):
        sent = await _send(response, job, sent)
        quiet_since = loop.time()
        while not job.state.finished:
            await asyncio.sleep(WATCH)
            current = store.get(job.id)
            if current is None:  # deleted meanwhile
                break
            job = current
            if job.version > sent:
                sent = await _send(response, job, sent)
                quiet_since = loop.time()
            elif loop.time() - quiet_since >= HEARTBEAT:
                await response.write(b": keep-alive\n\n")
                quiet_since = loop.time()
        await response.write_eof()
    return response


async def _send(response: web.StreamResponse, job: Job, sent: int) -> int:
    """Send ``job`` if it is newer than ``sent``; the version the client now has."""
    if job.version <= sent:
        return sent
    await response.write(b"id: %d\nevent: video\ndata: %s\n\n" % (job.version, video_body(job)))
    return job.version


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else -1


ROUTES = (web.get("/v1/videos/{video_id}/events", video_events),)
