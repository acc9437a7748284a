"""The headers every answer carries, errors and streamed downloads included: ``X-Request-Id``
(``router.logs``) and, for an allowed origin, CORS (``router.access.cors``).

The handler wrapper (``router.app.fronted``) stamps every answer a handler returns unsent; a
handler that streams (sends its headers itself, ``router.api.content``) stamps its response
before ``prepare``. Not an ``on_response_prepare`` signal: that is one more coroutine per
answer, the cost the wrapper exists to avoid (``python -m bench.ab`` against the signal put the
difference between 0 and 5% of a create's CPU, inside the noise of a loaded machine).
"""

from __future__ import annotations

from aiohttp import web
from multidict import istr

from router import appkeys as keys
from router.access.cors import CorsPolicy
from router.logs import REQUEST_ID

# an ``istr`` carries its case-folded form, which a multidict would otherwise compute on every
# lookup and insertion (twice per request: the request's header, the answer's)
REQUEST_ID_HEADER = istr("X-Request-Id")


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Add the request id and any CORS headers to ``response`` (not sent yet); for a handler,
    which runs under its request's id."""
    cors = request.app[keys.CORS]
    stamp_answer(request, response, REQUEST_ID.get(), cors or None)


def stamp_answer(
    request: web.Request,
    response: web.StreamResponse,
    request_id: str | None,
    cors: CorsPolicy | None,
) -> None:
    """``stamp`` with what the wrapper has in hand: the id, and the policy (None: no origin
    is allowed)."""
    headers = response.headers
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    if cors is not None:
        cors.decorate(request.headers.get("Origin"), headers)
