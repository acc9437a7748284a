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

from router import appkeys as keys

REQUEST_ID_HEADER = "X-Request-Id"


def stamp(request: web.Request, response: web.StreamResponse) -> None:
    """Add the request id and any CORS headers to ``response`` (not sent yet)."""
    request_id = request.get(keys.REQUEST_ID)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id
    cors = request.app[keys.CORS]
    if cors:
        cors.decorate(request.headers.get("Origin"), response.headers)
