"""Cross-origin access for browser clients: ``server.cors_origins``.

Empty (the default), the proxy adds no CORS header and a browser page on another origin cannot
read its answers. An origin on the list (exactly as the browser sends it, scheme, host and port;
``*`` allows any) gets:

- its preflight (``OPTIONS`` with ``Access-Control-Request-Method``) answered 204 without a key:
  a browser never sends credentials on a preflight, so asking for one would block every call;
- ``Access-Control-Allow-Origin`` naming it, on every answer, errors included, so a page can
  read a 401 or a 429 as well as a video; ``Access-Control-Expose-Headers`` lets it read the
  request id, ``Retry-After`` and the poll pace.

The origin is echoed rather than ``*`` so answers to requests with ``Authorization`` are
readable; ``Vary: Origin`` keeps shared caches from mixing origins.
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping

from aiohttp import web

ALLOWED_METHODS = "GET, POST, DELETE, OPTIONS"
EXPOSED_HEADERS = (
    "X-Request-Id, Retry-After, openai-poll-after-ms, x-should-retry, Content-Length, "
    "Content-Range, Accept-Ranges"
)
MAX_AGE = "600"  # seconds a browser may reuse a preflight's answer
_MAX_REQUESTED_HEADERS = 1024  # characters of Access-Control-Request-Headers echoed back


class CorsPolicy:
    __slots__ = ("_any", "_origins")

    def __init__(self, origins: Collection[str]) -> None:
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    def __bool__(self) -> bool:
        return bool(self._origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self._any or origin in self._origins)

    def decorate(self, origin: str | None, headers: MutableMapping[str, str]) -> None:
        """Add the headers an allowed ``origin`` needs to read an answer with ``headers``."""
        if not self.allows(origin):
            return
        assert origin is not None
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        vary = headers.get("Vary")
        headers["Vary"] = f"{vary}, Origin" if vary else "Origin"

    def preflight(self, request: web.Request) -> web.Response | None:
        """The 204 for an allowed origin's preflight; None when this is not one."""
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        origin = request.headers.get("Origin")
        if not self.allows(origin):
            return None
        headers = {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Max-Age": MAX_AGE,
        }
        asked = request.headers.get("Access-Control-Request-Headers", "")
        if asked and len(asked) <= _MAX_REQUESTED_HEADERS and asked.isprintable():
            headers["Access-Control-Allow-Headers"] = asked
        return web.Response(status=204, headers=headers)
