"""What every HTTP adapter shares: one ``ClientSession``, timeouts, and error translation.

Each wire format subclasses ``HttpProvider`` and says only how its URLs, auth headers and
bodies look. Failures are translated here, once, into the ``ProviderError`` tree, so adapters
never inspect aiohttp exceptions or raw statuses. The session is created lazily on first use,
which is always inside the running loop (aiohttp sessions must not be built outside it).
OpenAI-style cursor lists are read here too, a page at a time (``read_page``, for the adapters'
``list_page``) or walked back as far as a search needs (``read_list``, for their ``find``).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from providers.base import (
    BadUpstreamReply,
    ConnectFailed,
    ModerationBlocked,
    ModerationStage,
    ProviderError,
    ProviderUnusable,
    RateLimited,
    Rejected,
    ServerFailed,
    Unsearchable,
    UpstreamTimeout,
)

# Connections per provider: status reads are capped by poll_max_concurrent and renders by
# max_concurrent (router.limits.local); this only bounds creates, content streams and probes on top.
CONNECTIONS = 100
_PASSED_HEADERS = ("Content-Range", "Accept-Ranges", "ETag", "Last-Modified")
LIST_PAGE = 100  # entries per list page, the most the OpenAI list takes
LIST_MAX_PAGES = 20  # a walk longer than this cannot be finished honestly within a poll
MODERATION_CODES = frozenset({"moderation_blocked", "content_policy_violation", "content_filter"})


class HttpContentStream:
    """An upstream download being relayed chunk by chunk; never buffered whole."""

    __slots__ = ("_response", "content_length", "content_type", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.content_type = response.headers.get("Content-Type", "application/octet-stream")
        self.content_length = response.content_length
        self.headers = {h: response.headers[h] for h in _PASSED_HEADERS if h in response.headers}

    async def chunks(self) -> AsyncIterator[bytes]:
        # iter_any hands over what the socket delivered without re-slicing it.
        async for chunk in self._response.content.iter_any():
            yield chunk

    def close(self) -> None:
        self._response.release()


class HttpProvider:
    """Base for adapters that talk HTTP to one upstream account."""

    kind = ""
    lists = False  # wire formats with a list of renders say so (``Provider.list_page``)

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        api_key: str,
        timeout: float,
        api_version: str = "",
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._api_version = api_version  # only wire formats that version their API send it
        self.timeout = timeout  # seconds per call; an answer later than this never comes
        self._timeout = aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0))
        # Downloads can outlast any total timeout; only a silent socket is an error there.
        self._content_timeout = aiohttp.ClientTimeout(
            total=None, connect=min(timeout, 10.0), sock_read=timeout
        )
        self._session: aiohttp.ClientSession | None = None
        # Built on first call, once per provider: headers and query are the same every time.
        self._headers: dict[str, str] | None = None
        self._json_headers: dict[str, str] = {}
        self._query: dict[str, str] | None = None

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

    # -- shared plumbing ----------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

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
            self._headers = self.auth_headers()
            self._json_headers = {**self._headers, "Content-Type": "application/json"}
            self._query = self.query() or None
        headers = self._headers
        query = {**self._query, **params} if self._query and params else (params or self._query)
        payload: aiohttp.FormData | bytes | None = data
        if json is not None:
            payload, headers = orjson.dumps(json), self._json_headers
        try:
            async with self.session.request(
                method, url, data=payload, params=query, headers=headers
            ) as response:
                body = await response.read()
                if response.status >= 400:
                    raise self.translate_status(response.status, body, response.headers, operation)
        except ProviderError:
            raise
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(str(exc), provider=self.name, sent=False) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"{operation}: no answer within the timeout", provider=self.name, sent=None
            ) from exc
        except aiohttp.ClientError as exc:
            # The connection broke after the request went out: it may have been accepted.
            raise UpstreamTimeout(f"{operation}: {exc!r}", provider=self.name, sent=None) from exc
        try:
            return orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise BadUpstreamReply(
                f"{operation}: reply is not JSON", provider=self.name, status=response.status
            ) from exc

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
        self, url: str, *, headers: Mapping[str, str], params: Mapping[str, str] | None = None
    ) -> HttpContentStream:
        """Start a download; the caller owns the returned stream and must close it."""
        try:
            response = await self.session.get(
                url, params=params, headers=headers, timeout=self._content_timeout
            )
        except aiohttp.ClientConnectorError as exc:
            raise ConnectFailed(str(exc), provider=self.name) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamTimeout(f"content: {exc!r}", provider=self.name, sent=None) from exc
        if response.status >= 400:
            body = await response.read()
            response.release()
            raise self.translate_status(response.status, body, response.headers, "content")
        return HttpContentStream(response)

    def translate_status(
        self, status: int, body: bytes, headers: Mapping[str, str], operation: str
    ) -> ProviderError:
        """Classify an HTTP error answer into the most specific ``ProviderError``.

        The upstream's words are scrubbed of our key first: an upstream that echoes the
        credential it got ("Incorrect API key provided: sk-...") must not make us repeat it in
        a log line or, for a refusal passed through, in a client's answer.
        """
        code, message, param = (self._scrub(f) for f in error_fields(body))
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
        if text is None or not self._api_key or self._api_key not in text:
            return text
        return text.replace(self._api_key, "[redacted]")


def error_fields(body: bytes) -> tuple[str | None, str | None, str | None]:
    """(code, message, param) from an OpenAI envelope or a flat relay error body."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, body[:200].decode("utf-8", "replace") or None, None
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
