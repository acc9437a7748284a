"""``GET /v1/videos/{id}/events``: a job's changes as server-sent events (the key's own jobs).

The stream opens with the job's current state, then sends every change until the job settles,
then ends. Changes come from the job-events seam (``router.jobs.follow``): whichever instance
of a fleet polls the job, every instance hears its changes, so the client may be connected to
any of them. Each event is the whole Video object at one version::

    id: <the job's version>
    event: video
    data: <the Video object>

A client that reconnects with ``Last-Event-ID`` gets the current state at once if it changed
since that version (a state, not a log: it subsumes every change in between), then the rest.
A comment line after ``HEARTBEAT`` quiet seconds keeps idle connections (and proxies) open.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from router import appkeys as keys
from router.api.openai import video_body
from router.api.requests import owned_job
from router.api.stamp import stamp
from router.jobs.follow import follow

HEARTBEAT = 15.0
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


async def video_events(request: web.Request) -> web.StreamResponse:
    job = await owned_job(request)
    app = request.app
    response = web.StreamResponse(headers=HEADERS)
    stamp(request, response)  # a stream sends its own headers: request id and CORS first
    await response.prepare(request)
    states = follow(
        job.id, app[keys.STORE], app[keys.EVENTS], after=_last_event_id(request), quiet=HEARTBEAT
    )
    with contextlib.suppress(ConnectionError):  # the client went away (reset, or lost)
        async with contextlib.aclosing(states):
            async for state in states:
                if state is None:
                    await response.write(b": keep-alive\n\n")
                else:
                    body = video_body(state)
                    await response.write(
                        b"id: %d\nevent: video\ndata: %s\n\n" % (state.version, body)
                    )
        await response.write_eof()
    return response


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else -1


ROUTES = (web.get("/v1/videos/{video_id}/events", video_events),)
