"""``ApiClient``: the lean HTTP/1.1 client behind ``HttpProvider.request_json``.

Why it exists: aiohttp's client builds a request object, merges headers, wraps the body in a
payload, consults a cookie jar and arms timers on every call, about a fifth of the proxy's
loop per create (issue 21, ``bench/README.md``). An API call is always the same shape (one
origin, a short JSON body or none, a short JSON reply), so this client keeps keep-alive
connections to the provider's origin, writes a request as one ``bytes`` and parses the
reply with ``httptools`` (llhttp, the parser uvicorn uses; one connection's side is
``providers.api_connection``). Uploads (multipart) and content downloads stay on aiohttp.

What a caller can rely on (the boundary drawn in ``providers.http``):

- it never follows a redirect: the status comes back, the caller decides;
- it reads at most ``cap`` bytes of a body: past that, a reply below 300 raises
  ``ReplyTooLong`` and any other is cut there; headers are capped (``MAX_HEAD``);
- it connects only where the provider's ``AddressPolicy`` allows (names through its
  ``GuardedResolver``), over verified TLS with SNI for an https origin;
- ``NotSent``: nothing went out; ``Broken``: the connection failed or the reply was malformed
  after the request went out; ``TimedOut`` says which of the two it was (``sent``);
- a pooled connection the server closed is replaced before sending; an idempotent call whose
  reused connection closed before any byte of reply is sent once more on another (aiohttp
  does the same), a POST never;
- only a reply read to its end on a keep-alive connection returns its connection to the pool;
  a call that fails or is cancelled closes its connection. At most ``limit`` connections.

It must not know the ``ProviderError`` tree (``providers.http`` translates), log, or keep
anything of a call once it has answered.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Mapping
from functools import partial
from urllib.parse import quote, urlencode

import aiohappyeyeballs
from aiohttp.abc import AbstractResolver
from yarl import URL

from providers.api_connection import ApiConnection, Broken, Reply

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)
_RESOLVED_FOR = 300.0  # seconds a name's addresses are reused for new connections
# Seconds before the next address is tried beside a connect still pending (RFC 8305; aiohttp's
# default too): a name with a black-holed IPv6 address still connects over IPv4 at once.
_NEXT_ADDRESS_AFTER = 0.25
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})  # may be sent again
_WITH_LENGTH = frozenset({"POST", "PUT", "PATCH"})  # a Content-Length even of 0
# What a path may hold as it is: escapes stay escapes, the rest (a space, a line break,
# anything not ASCII) is percent-encoded, so nothing a caller puts in can split the request.
_TARGET_SAFE = "/?&=%:@!$'()*+,;~"


class NotSent(OSError):
    """No connection could be made: nothing of the request went out."""


class TimedOut(Exception):
    """No reply within the timeout; ``sent`` tells whether the request had gone out."""

    def __init__(self, sent: bool) -> None:
        super().__init__("sent" if sent else "not sent")
        self.sent = sent


class ApiClient:
    """Keep-alive HTTP/1.1 connections to one origin; see the module docstring."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        resolver: AbstractResolver,
        *,
        limit: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        root = URL(base_url)
        https = root.scheme == "https"
        self._host = root.raw_host or ""
        self._port = root.port or (443 if https else 80)
        self._tls = (ssl_context or ssl.create_default_context()) if https else None
        self._resolver = resolver
        self._slots = asyncio.Semaphore(limit)
        self._idle: deque[ApiConnection] = deque()
        self._addresses: list[aiohappyeyeballs.AddrInfoType] = []
        self._resolved_at = -_RESOLVED_FOR
        self._closed = False
        self._path = root.raw_path.rstrip("/")
        every = {
            "Host": root.host_port_subcomponent or self._host,
            **headers,
            "User-Agent": "sora-api-proxy",
            "Accept": "application/json",
            "Accept-Encoding": "identity",  # a reply is never compressed
        }
        self._head = _header_block(every)
        self._json_head = self._head + b"Content-Type: application/json\r\n"

    @staticmethod
    def serves(base_url: str) -> bool:
        """Whether calls under ``base_url`` can go through this client (http or https,
        without credentials or a query in it); aiohttp takes the others."""
        root = URL(base_url)
        return (
            root.scheme in ("http", "https")
            and bool(root.host)
            and not (root.user or root.query_string)
        )

    def request(
        self, method: str, rest: str, query: Mapping[str, str] | None, body: bytes | None
    ) -> bytes:
        """The bytes of a call to ``base_url + rest`` (``rest`` empty or from "/" or "?")."""
        target = self._path + quote(rest, safe=_TARGET_SAFE) if rest else self._path
        if query:
            target += ("&" if "?" in target else "?") + urlencode(query)
        line = f"{method} {target or '/'} HTTP/1.1\r\n".encode("ascii")
        if body is not None:
            length = b"Content-Length: %d\r\n\r\n" % len(body)
            return b"".join((line, self._json_head, length, body))
        end = b"Content-Length: 0\r\n\r\n" if method in _WITH_LENGTH else b"\r\n"
        return b"".join((line, self._head, end))

    async def call(
        self,
        method: str,
        rest: str,
        query: Mapping[str, str] | None,
        body: bytes | None,
        *,
        cap: int,
        within: float,
        connect_within: float,
    ) -> Reply:
        """Send a call (see ``request``) and read its reply; see the module docstring."""
        request = self.request(method, rest, query, body)
        idempotent = method in IDEMPOTENT
        sent = False
        try:
            async with asyncio.timeout(within), self._slots:
                for attempt in range(2):
                    connection = self._pooled() or await self._connect(connect_within)
                    sent = True
                    try:
                        reply = await connection.exchange(request, cap)
                    except Broken:
                        connection.close()
                        again = idempotent and connection.reused and not connection.answered
                        if again and attempt == 0:
                            continue  # the server had closed it as we sent: not taken
                        raise
                    except BaseException:
                        connection.close()  # cancelled or timed out mid-reply: never pooled
                        raise
                    self._release(connection)
                    return reply
        except TimeoutError:
            raise TimedOut(sent) from None
        raise AssertionError("unreachable: the loop returns or raises")

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    @property
    def idle(self) -> int:
        """Connections in the pool now."""
        return sum(not c.closed for c in self._idle)

    def _pooled(self) -> ApiConnection | None:
        now = asyncio.get_running_loop().time()
        while self._idle and now - self._idle[0].idle_since > KEEPALIVE:
            self._idle.popleft().close()
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                connection.reused = True
                return connection
        return None

    def _release(self, connection: ApiConnection) -> None:
        if connection.reusable and not self._closed:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.close()

    async def _connect(self, within: float) -> ApiConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                sock = await aiohappyeyeballs.start_connection(
                    await self._resolve(), happy_eyeballs_delay=_NEXT_ADDRESS_AFTER
                )
                _, connection = await loop.create_connection(
                    partial(ApiConnection, loop),
                    sock=sock,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                )
                return connection
        except TimeoutError:
            raise  # the caller's: a timeout before anything was sent
        except OSError as exc:  # no such name, ForbiddenAddress, refused, TLS refused
            raise NotSent(f"cannot connect to {self._host}:{self._port}: {exc}") from None

    async def _resolve(self) -> list[aiohappyeyeballs.AddrInfoType]:
        now = asyncio.get_running_loop().time()
        if not self._addresses or now - self._resolved_at > _RESOLVED_FOR:
            found = await self._resolver.resolve(self._host, self._port, socket.AF_UNSPEC)
            self._addresses = [_address(r["host"], r["port"]) for r in found]
            self._resolved_at = now
        return list(self._addresses)  # start_connection takes addresses off the list it gets


def _address(host: str, port: int) -> aiohappyeyeballs.AddrInfoType:
    """A resolved address as ``socket.getaddrinfo`` gives it, for ``start_connection``."""
    if ":" in host:
        return socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port, 0, 0)
    return socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (host, port)


def _header_block(headers: Mapping[str, str]) -> bytes:
    """``headers`` as header lines; a line break or NUL in one is a ``ValueError`` (it would
    let a configured value add headers of its own), as aiohttp refuses it."""
    lines = []
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} holds a line break or NUL")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")
