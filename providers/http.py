"""What every HTTP adapter shares: one ``ClientSession``, timeouts, and error translation.

Each wire format subclasses ``HttpProvider`` and says only how its URLs, auth headers and
bodies look. Failures are translated here, once, into the ``ProviderError`` tree, so adapters
never inspect aiohttp exceptions or raw statuses.

This is also the boundary against a broken or hostile upstream (README, "Security model"):

- API calls never follow redirects (a 3xx is a failed call), so a body or a credential never
  goes to a host the operator did not configure; content downloads follow up to
  ``MAX_REDIRECTS`` hops, each judged by the provider's ``AddressPolicy``
  (``providers.addresses``), with credentials only for the provider's own origin;
- a JSON reply is read up to ``max_reply_bytes``; a longer one is a ``BadUpstreamReply``;
- every string of every reply, and the text of every failure, passes the ``Scrubber``
  (``providers.scrubber``) and is clipped, before an adapter, a log line or a client sees it;
- ids an upstream hands us must look like ids (``UPSTREAM_ID``) and go into paths escaped
  (``segment``);
- content is relayed only as a video or image type, with ``nosniff`` and a
  ``Content-Disposition``. The session is created lazily on first use,
which is always inside the running loop (aiohttp sessions must not be built outside it).
OpenAI-style cursor lists are read here too, a page at a time (``read_page``, for the adapters'
``list_page``) or walked back as far as a search needs (``read_list``, for their ``find``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mimetypes
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from providers.addresses import AddressPolicy, ForbiddenAddress, GuardedResolver
from providers.api_client import ApiClient, NotSent, TimedOut
from providers.api_connection import Broken, ReplyTooLong
from providers.base import (
    BadUpstreamReply,
    ConnectFailed,
    ModerationBlocked,
    ModerationStage,
    ProviderError,
    ProviderUnusable,
    RateLimited,
    Rejected,
    RenderRequest,
    ServerFailed,
    SourceVideo,
    Unsearchable,
    UpstreamJob,
    UpstreamTimeout,
)
from providers.scrubber import LOG_LIMIT, TEXT_LIMIT, Scrubber, clip

# Connections per provider: status reads are capped by poll_max_concurrent and renders by
# max_concurrent (router.limits.local); this only bounds creates, content streams and probes on top.
CONNECTIONS = 100
_PASSED_HEADERS = ("Content-Range", "Accept-Ranges", "ETag", "Last-Modified")
LIST_PAGE = 100  # entries per list page, the most the OpenAI list takes
LIST_MAX_PAGES = 20  # a walk longer than this cannot be finished honestly within a poll
MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation", "content_filter"})
MAX_REPLY_BYTES = 8 * 1024 * 1024  # default cap on a JSON reply (100 Videos with long prompts fit)
MAX_REDIRECTS = 5  # hops a content download may take (an upstream may send it on to its CDN)
# What an upstream id may look like: what every known upstream uses, and nothing that changes
# a URL's meaning (no "/", "?", "#", "%", no leading dot).
UPSTREAM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,255}")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class HttpContentStream:
    """An upstream download being relayed chunk by chunk; never buffered whole.

    A download that moves no byte for ``idle`` seconds ends with ``aiohttp.SocketTimeoutError``
    (what aiohttp's ``sock_read`` raises) on its next read, and its connection is closed. One
    timer checks the byte count every ``idle`` seconds: ``sock_read`` instead cancelled and
    re-armed a timer on every piece the socket delivered, ~3% of a relay's CPU (issue 21,
    ``bench/README.md``). Unlike ``sock_read`` it also ends a download whose reader stopped
    taking bytes for that long (a client that stalls), as nginx's ``send_timeout`` does.
    """

    __slots__ = (
        "_idle", "_moved", "_response", "_watch", "content_length", "content_type", "headers",
        "status",
    )  # fmt: skip

    def __init__(self, response: aiohttp.ClientResponse, idle: float) -> None:
        self._response = response
        self._idle = idle
        self._moved = -1
        self._watch = asyncio.get_running_loop().call_later(idle, self._check)
        self.status = response.status
        self.content_type = response.content_type  # the media type alone, lower case
        self.content_length = response.content_length
        self.headers = {h: response.headers[h] for h in _PASSED_HEADERS if h in response.headers}
        # The proxy's origin serves it: a browser must neither sniff it into a page nor guess.
        extension = mimetypes.guess_extension(self.content_type) or ""
        name = self.content_type.split("/", 1)[0] + extension
        self.headers["X-Content-Type-Options"] = "nosniff"
        self.headers["Content-Disposition"] = f'inline; filename="{name}"'

    def chunks(self) -> AsyncIterator[bytes]:
        # iter_any hands over what the socket delivered without re-slicing it, and is handed
        # out as it is: an async generator around it cost one more resumption per piece.
        return self._response.content.iter_any()

    def close(self) -> None:
        self._watch.cancel()
        self._response.release()

    def _check(self) -> None:
        content = self._response.content
        if content.is_eof():
            return  # all arrived: whatever the reader does now is no upstream's business
        if content.total_bytes == self._moved:
            content.set_exception(
                aiohttp.SocketTimeoutError(f"content: no byte moved for {self._idle:g}s")
            )
            self._response.close()
            return
        self._moved = content.total_bytes
        self._watch = asyncio.get_running_loop().call_later(self._idle, self._check)


class HttpProvider:
    """Base for adapters that talk HTTP to one upstream account."""

    kind = ""
    lists = False  # wire formats with a list of renders say so (``Provider.list_page``)
    # Operations beyond create (``providers.base.FEATURES``): none unless a format says so.
    features: frozenset[str] = frozenset()
    cancels = False  # whether the format can stop a render in flight

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str,
        timeout: float,
        api_version: str = "",
        scrubber: Scrubber | None = None,
        content_hosts: tuple[str, ...] = (),
        allow_private_addresses: bool = False,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        # The pool shares one scrubber that knows every secret of the proxy; alone, an adapter
        # at least knows its own key.
        self._scrubber = scrubber if scrubber is not None else Scrubber([api_key])
        self._scrubber.learn([api_key])
        self.addresses = AddressPolicy(self.base_url, content_hosts, allow_private_addresses)
        self.max_reply_bytes = max_reply_bytes
        self._api_version = api_version  # only wire formats that version their API send it
        self.timeout = timeout  # seconds per call; an answer later than this never comes
        # seconds to connect, within the call's: the same for aiohttp and the lean client
        self._connect_timeout = min(timeout, 10.0)
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=self._connect_timeout)
        # Downloads can outlast any total timeout; only a silent one is an error there
        # (``HttpContentStream`` watches for that).
        self._content_timeout = aiohttp.ClientTimeout(total=None, connect=self._connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        # Built on first call, once per provider: headers and query are the same every time.
        self._headers: dict[str, str] | None = None
        self._json_headers: dict[str, str] = {}
        self._query: dict[str, str] | None = None
        # API calls under base_url go through the lean client (``providers.api_client``),
        # built on first use like the session; a base_url it cannot serve (credentials or a
        # query in it) leaves every call on aiohttp.
        self._api_base = self.base_url if ApiClient.serves(self.base_url) else None
        self._api: ApiClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    # -- what a wire format specifies --------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def url(self, path: str) -> str:
        return self.base_url + path

    def query(self) -> dict[str, str]:
        """Query parameters every call carries (Azure's api-version)."""
        return {}

    # -- operations a wire format may lack: "cannot" unless it overrides them -------------

    async def edit(self, request: RenderRequest) -> UpstreamJob:
        raise self.cannot("edit")

    async def extend(self, request: RenderRequest) -> UpstreamJob:
        raise self.cannot("extend")

    async def create_character(self, name: str, clip: SourceVideo) -> str:
        raise self.cannot("characters")

    async def cancel(self, upstream_id: str) -> None:
        raise self.cannot("cancel")

    def cannot(self, operation: str) -> Rejected:
        """The refusal of an operation this wire format does not have."""
        return Rejected(
            f"Provider kind '{self.kind}' cannot do '{operation}'.",
            provider=self.name,
            code=f"{operation}_not_supported",
        )

    # -- shared plumbing ----------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=CONNECTIONS, ttl_dns_cache=300, resolver=GuardedResolver(self.addresses)
            )
            # No cookie jar: one session serves every tenant's calls, and a cookie an upstream
            # sets must not ride along on the next call (nor be a way to steer it).
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._api is not None:
            await self._api.aclose()
            self._api = None

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        operation: str,
        json: Any = None,
        data: aiohttp.FormData | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one call and return its parsed JSON body, or raise a ``ProviderError``."""
        if self._headers is None:
            self._prepare_headers()
        query = {**self._query, **params} if self._query and params else (params or self._query)
        if data is None and self._api_base is not None and url.startswith(self._api_base):
            rest = url[len(self._api_base) :]
            if not rest or rest[0] in "/?":
                body = None if json is None else orjson.dumps(json)
                return await self._call_lean(method, rest, query, body, operation)
        headers = self._headers
        payload: aiohttp.FormData | bytes | None = data
        if json is not None:
            payload, headers = orjson.dumps(json), self._json_headers
        try:
            async with self.session.request(
                method, url, data=payload, params=query, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                body = b""
                if status >= 400:
                    body = await self._read_capped(response, operation, whole=False)
                elif status < 300:
                    body = await self._read_capped(response, operation, whole=True)
        except ProviderError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(self.describe(exc), provider=self.name, sent=False) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamTimeout(
                f"{operation}: no answer within the timeout", provider=self.name, sent=None
            ) from None
        except aiohttp.ClientError as exc:
            # The connection broke after the request went out: it may have been accepted.
            raise UpstreamTimeout(
                f"{operation}: {self.describe(exc)}", provider=self.name, sent=None
            ) from None
        if status >= 300:
            raise self._refusal(status, body, response.headers, operation)
        return self._parsed(status, body, operation)

    def _prepare_headers(self) -> None:
        self._headers = self.auth_headers()
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._query = self.query() or None

    async def _call_lean(
        self,
        method: str,
        rest: str,
        query: Mapping[str, str] | None,
        body: bytes | None,
        operation: str,
    ) -> Any:
        """One API call through ``ApiClient``; its failures translated as aiohttp's are."""
        if self._api is None:
            headers = self._headers or {}
            self._api = ApiClient(
                self.base_url, headers, GuardedResolver(self.addresses), limit=CONNECTIONS
            )
        try:
            reply = await self._api.call(
                method,
                rest,
                query,
                body,
                cap=self.max_reply_bytes,
                within=self.timeout,
                connect_within=self._connect_timeout,
            )
        except NotSent as exc:
            raise ConnectFailed(self.describe(exc), provider=self.name, sent=False) from None
        except TimedOut as exc:
            raise UpstreamTimeout(
                f"{operation}: no answer within the timeout",
                provider=self.name,
                sent=None if exc.sent else False,
            ) from None
        except ReplyTooLong as exc:
            raise self._too_long(exc.status, operation) from None
        except Broken as exc:
            # The connection broke after the request went out: it may have been accepted.
            raise UpstreamTimeout(
                f"{operation}: {self.describe(exc)}", provider=self.name, sent=None
            ) from None
        if reply.status >= 300:
            raise self._refusal(reply.status, reply.body, reply.headers, operation)
        return self._parsed(reply.status, reply.body, operation)

    def _refusal(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        """The error of an answer of 300 or more: a redirect is never followed."""
        if status >= 400:
            return self.translate_status(status, body, headers, operation)
        # Following it would send our credential and the client's body to a host nobody
        # configured; an API answering this way is broken.
        return ServerFailed(
            f"{operation}: the upstream answered a redirect (HTTP {status}),"
            " which the proxy does not follow",
            provider=self.name,
            status=status,
            sent=True,
        )

    def _parsed(self, status: int, body: bytes, operation: str) -> Any:
        try:
            reply = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise BadUpstreamReply(
                f"{operation}: reply is not JSON", provider=self.name, status=status
            ) from None
        return self._scrubber.scrub_reply(body, reply)

    async def _read_capped(
        self, response: aiohttp.ClientResponse, operation: str, *, whole: bool
    ) -> bytes:
        """The body, up to ``max_reply_bytes``. Past that a reply that must be read ``whole``
        is a ``BadUpstreamReply``; an error reply is cut (only its start is read)."""
        cap = self.max_reply_bytes
        if whole and response.content_length is not None and response.content_length > cap:
            raise self._too_long(response.status, operation)
        parts: list[bytes] = []
        size = 0
        # readany, not iter_any: no iterator object and one frame less per piece
        while chunk := await response.content.readany():
            parts.append(chunk)
            size += len(chunk)
            if size > cap:
                if whole:
                    raise self._too_long(response.status, operation)
                break
        return b"".join(parts)[:cap]

    def _too_long(self, status: int, operation: str) -> BadUpstreamReply:
        return BadUpstreamReply(
            f"{operation}: reply longer than {self.max_reply_bytes} bytes",
            provider=self.name,
            status=status,
            sent=True,
        )

    def describe(self, exc: BaseException) -> str:
        """An exception of the HTTP client as log-safe text: scrubbed and clipped, never its
        repr (aiohttp's reprs carry the request headers, our key among them)."""
        return clip(self._scrubber.scrub(f"{type(exc).__name__}: {exc}"), LOG_LIMIT)

    def upstream_text(self, value: object, limit: int = TEXT_LIMIT) -> str | None:
        """A piece of upstream text (already scrubbed with the reply) for a record: clipped."""
        return None if value is None else clip(str(value), limit)

    def upstream_id(self, value: object) -> str:
        """An id from an upstream reply; one no upstream would issue is a malformed reply."""
        if isinstance(value, str) and UPSTREAM_ID.fullmatch(value):
            return value
        raise BadUpstreamReply("reply carries a malformed id", provider=self.name, sent=True)

    async def read_page(
        self, url: str, *, operation: str, after: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of an OpenAI-style cursor list, newest first: its entries and the cursor
        of the next page (None when the list ends here).

        Sends ``order=desc&limit=100`` and ``after`` when given. Raises ``Unsearchable`` when
        the upstream has no such list (404, 405), ``BadUpstreamReply`` for a reply that is not
        a list.
        """
        params = {"order": "desc", "limit": str(LIST_PAGE)}
        if after is not None:
            params["after"] = after
        try:
            reply = await self.request_json("GET", url, operation=operation, params=params)
        except Rejected as exc:
            if exc.status in (404, 405):
                raise Unsearchable(
                    f"{operation}: the upstream has no list here", provider=self.name
                ) from exc
            raise
        data = reply.get("data") if isinstance(reply, dict) else None
        if not isinstance(data, list):
            raise BadUpstreamReply(f"{operation}: reply is not a list", provider=self.name)
        page = [entry for entry in data if isinstance(entry, dict)]
        last = reply.get("last_id") or (page[-1].get("id") if page else None)
        return page, str(last) if reply.get("has_more") and last else None

    async def read_list(
        self,
        url: str,
        *,
        operation: str,
        enough: Callable[[list[dict[str, Any]]], bool],
        max_pages: int = LIST_MAX_PAGES,
    ) -> list[dict[str, Any]]:
        """Entries of an OpenAI-style cursor list, newest first, page by page until ``enough``.

        Follows the cursor (``read_page``) while there are more pages; ``enough`` sees each
        page and stops the walk when it returns True. Raises what ``read_page`` raises, and
        ``Unsearchable`` when the walk would need more than ``max_pages`` pages.
        """
        entries: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(max_pages):
            page, after = await self.read_page(url, operation=operation, after=after)
            entries.extend(page)
            if enough(page) or after is None:
                return entries
        raise Unsearchable(f"{operation}: more than {max_pages} pages to read", provider=self.name)

    async def open_stream(
        self,
        url: str,
        *,
        range_header: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> HttpContentStream:
        """Start a download; the caller owns the returned stream and must close it.

        Redirects are followed by hand, up to ``MAX_REDIRECTS``: each hop must pass the address
        policy, and the credential goes only to the provider's own origin. The answer must be
        a video or an image, else ``BadUpstreamReply``. Each hop's answer starts within
        ``timeout`` (else ``UpstreamTimeout``), and a refusal's body is read for at most as
        long; the body of a download has no total, only ``HttpContentStream``'s watch.
        """
        target = URL(url)
        if params:
            target = target.update_query(params)
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._get_content(target, range_header)
            if response.status not in _REDIRECTS:
                break
            location = response.headers.get("Location", "")
            response.release()
            try:
                target = target.join(URL(location))
            except ValueError:
                raise BadUpstreamReply(
                    "content: a redirect to an unreadable address", provider=self.name
                ) from None
        else:
            response.release()
            raise BadUpstreamReply("content: too many redirects", provider=self.name)
        if response.status >= 400:
            body = b""
            try:
                # a refusal whose body never ends: its status says what happened
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout):
                        body = await self._read_capped(response, "content", whole=False)
            finally:
                response.release()
            raise self.translate_status(response.status, body, response.headers, "content")
        if not _is_media(response.content_type):
            response.release()
            raise BadUpstreamReply(
                f"content: the upstream served {clip(response.content_type, 60)!r}, "
                "not a video or an image",
                provider=self.name,
                status=response.status,
            )
        return HttpContentStream(response, self.timeout)

    async def _get_content(self, target: URL, range_header: str | None) -> aiohttp.ClientResponse:
        """One hop of a download; never follows a redirect itself."""
        try:
            self.addresses.check(target)
        except ForbiddenAddress as exc:
            raise BadUpstreamReply(
                f"content: refused to fetch: {exc}", provider=self.name
            ) from None
        headers = self.auth_headers() if target.origin() == self.addresses.origin else {}
        if range_header:
            headers["Range"] = range_header
        try:
            # The head of the answer within the call's timeout: ``_content_timeout`` has no total
            # (a download may outlast any), and an upstream that never answers would hold a copy
            # worker or a client's download for as long as it kept the connection open.
            async with asyncio.timeout(self.timeout):
                return await self.session.get(
                    target, headers=headers, timeout=self._content_timeout, allow_redirects=False
                )
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ForbiddenAddress):
                raise BadUpstreamReply(
                    f"content: refused to fetch: {exc.os_error}", provider=self.name
                ) from None
            raise ConnectFailed(self.describe(exc), provider=self.name) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamTimeout(
                f"content: {self.describe(exc)}", provider=self.name, sent=None
            ) from None

    def translate_status(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        """Classify an HTTP error answer into the most specific ``ProviderError``.

        The upstream's words are scrubbed of our key first: an upstream that echoes the
        credential it got ("Incorrect API key provided: sk-...") must not make us repeat it in
        a log line or, for a refusal passed through, in a client's answer.
        """
        code, message, param = (self._scrub(f) for f in error_fields(body))
        code, param = self.upstream_text(code, 64), self.upstream_text(param, 64)
        text = message or f"upstream answered HTTP {status}"
        common: dict[str, Any] = {
            "provider": self.name,
            "status": status,
            "code": code,
            "param": param,
            "sent": True,
        }
        if status == 429:
            return RateLimited(text, retry_after=retry_after_seconds(headers), **common)
        if status >= 500:
            return ServerFailed(text, **common)
        if status in (401, 403) or (status == 404 and operation == "create"):
            return ProviderUnusable(text, **common)
        if code in MODERATION_CODES:
            stage = ModerationStage.INPUT if param == "input_reference" else ModerationStage.PROMPT
            return ModerationBlocked(text, stage=stage, **common)
        return Rejected(text, **common)

    def _scrub(self, text: str | None) -> str | None:
        return None if text is None else clip(self._scrubber.scrub(text))


def segment(upstream_id: str) -> str:
    """``upstream_id`` as one path segment: ids are checked when they arrive
    (``HttpProvider.upstream_id``), and escaped again here for ids stored before that was so.
    The three values escaping cannot keep in their segment are a ``BadUpstreamReply``."""
    if upstream_id in ("", ".", ".."):
        raise BadUpstreamReply("a malformed upstream id", sent=False)
    return quote(upstream_id, safe="")


def _is_media(content_type: str) -> bool:
    """A video or a raster image: a type no browser runs as a page or a script."""
    major, _, minor = content_type.partition("/")
    return major in ("video", "image") and "svg" not in minor and "xml" not in minor


def error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, param) from an OpenAI envelope or a flat relay error body."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, body[:LOG_LIMIT].decode("utf-8", "replace") or None, None
    if not isinstance(parsed, dict):
        return None, None, None
    error = parsed.get("error", parsed)
    if not isinstance(error, dict):
        return None, str(error), None
    code, message, param = error.get("code"), error.get("message"), error.get("param")
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        str(param) if param is not None else None,
    )


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``retry-after-ms`` wins over ``Retry-After`` (seconds); HTTP dates are not used upstream."""
    for name, scale in (("retry-after-ms", 0.001), ("Retry-After", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return None
