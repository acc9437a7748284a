"""The body readers both client dialects share: a create's body (JSON, multipart,
urlencoded) into one dict, read strictly and within time (issue 15).

Whatever a client sends, reading it ends in a dict or a 4xx in the envelope: a malformed or
undecodable body is a 400 ``invalid_body``, a body past the server's cap a 413, one slower
than ``server.min_upload_rate`` allows a 408, and a client gone mid-upload ``ClientGone``
(counted as 499, never logged as an error). Uploads are read part by part into memory (the
body cap bounds them), never spooled to temporary files. A form field given twice is a 400:
keeping one silently would render something the client did not ask for.
"""

from __future__ import annotations

import asyncio
import collections
import urllib.parse
from collections.abc import Iterable
from typing import Any

from aiohttp import BodyPartReader, hdrs, web

from providers.base import InputReference
from router import appkeys as keys
from router.assets.http import client_hung_up
from router.errors import InvalidRequest, PayloadTooLarge, RouterError
from router.jsonio import loads

MAX_FORM_FIELDS = 100


class ClientGone(RouterError):
    """The client hung up before its body arrived: nothing to answer, nobody to blame. Counted
    as 499 (nginx's "client closed request"), never logged as an error."""

    status = 499
    type = "invalid_request_error"
    default_code = "client_closed_request"
    retry_helps = False


MAX_FORM_FIELDS = 100


async def read_create_body(request: web.Request) -> dict[str, Any]:
    """JSON or multipart into one dict; an uploaded file stays an ``InputReference``.

    A form field given twice is a 400: keeping one silently would render something the
    client did not ask for (Sora takes one reference image). A JSON object labelled
    ``application/x-www-form-urlencoded`` (what ``curl -d`` sends without ``-H``) or sent with
    no Content-Type at all is read as JSON. A body that cannot be read (malformed multipart, a
    bad encoding, text that is not UTF-8) is a 400; a client gone mid-upload is ``ClientGone``.
    """
    content_type = request.content_type
    if content_type == "application/json":
        return await read_json_object(request)
    labelled = "Content-Type" in request.headers
    if content_type == "application/x-www-form-urlencoded" or not labelled:
        body = await read_body(request)
        if body.lstrip()[:1] == b"{":
            return json_object(body)
    if content_type == "application/x-www-form-urlencoded":
        return _urlencoded(await read_body(request), request.charset)
    if content_type == "multipart/form-data":
        return await _read_form(request)
    raise InvalidRequest(
        "Send the body as application/json or multipart/form-data.", code="unsupported_content_type"
    )


class BodyTimeout(RouterError):
    """The body came slower than the server's minimum upload rate allows."""

    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


async def read_body(request: web.Request) -> bytes:
    """The whole body (up to the server's cap: a 413 past it), or a 400 / 408 /
    ``ClientGone``."""
    try:
        if request.content.is_eof():
            # All of it came with the headers (a create's small JSON, usually): reading waits
            # for nothing, so it needs no timer (arming and cancelling one was ~3% of a
            # create's CPU, bench/README.md "Issue 21, third pass").
            return await request.read()
        async with asyncio.timeout(_body_seconds(request)):
            return await request.read()
    except TimeoutError:
        raise _too_slow(request) from None
    except Exception as exc:
        raise _unreadable(request, exc) from None


def _body_seconds(request: web.Request) -> float:
    """How long a body may take: ``body_timeout`` plus its length at ``min_upload_rate`` (the
    cap's length when it does not say), so a stalled upload gives its memory back."""
    server = request.app[keys.CONFIG].current.server
    length = request.content_length or server.max_body_bytes
    return server.body_timeout + min(length, server.max_body_bytes) / server.min_upload_rate


def _too_slow(request: web.Request) -> RouterError:
    server = request.app[keys.CONFIG].current.server
    return BodyTimeout(
        f"The request body did not arrive in time (at least {server.min_upload_rate} bytes "
        "per second are needed).",
    )


async def _read_form(request: web.Request) -> dict[str, Any]:
    """A multipart form read part by part into memory (up to the body cap), never spooled to
    temporary files: a malformed part anywhere leaves nothing behind to clean up."""
    try:
        async with asyncio.timeout(_body_seconds(request)):
            return await _multipart_fields(request)
    except RouterError:
        raise
    except TimeoutError:
        raise _too_slow(request) from None
    except Exception as exc:
        raise _unreadable(request, exc) from None


async def _multipart_fields(request: web.Request) -> dict[str, Any]:
    reader = await request.multipart()
    pairs: list[tuple[str, Any]] = []
    budget = request.client_max_size
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise InvalidRequest("A form part may not itself be multipart.", code="invalid_body")
        if part.name is None:
            raise InvalidRequest("Every form part needs a name.", code="invalid_body")
        name = _utf8(part.name, "A form field name")
        chunks: list[bytes] = []
        while chunk := await part.read_chunk():
            budget -= len(chunk)
            if budget < 0:
                raise PayloadTooLarge("Request body is larger than this server accepts.")
            chunks.append(chunk)
        data = part.decode(b"".join(chunks))  # transfer and content encodings; unknown: error
        if part.filename is not None:
            value: Any = InputReference(
                data=bytes(data),
                filename=_utf8(part.filename or "input", "A file name"),
                content_type=_utf8(
                    part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream"), "A type"
                ),
            )
        else:
            value = bytes(data).decode(part.get_charset("utf-8"))
        pairs.append((name, value))
    return _collect(pairs)


def _collect(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form fields into one dict. A field given twice is a 400, except a list field in the
    SDK's flattened form (``characters[][id]``, a name with ``[]``): its values are kept as a
    list, in order."""
    _reject_repeated(name for name, _ in pairs if "[]" not in name)
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if "[]" in name:
            fields.setdefault(name, []).append(value)
        else:
            fields[name] = value
    return fields


def _urlencoded(body: bytes, charset: str | None) -> dict[str, Any]:
    """A urlencoded form, strictly: UTF-8 only, escapes that decode, each field once."""
    if charset not in (None, "utf-8", "us-ascii"):
        raise InvalidRequest("Send the form in UTF-8.", code="invalid_body")
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode(),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError:  # UnicodeDecodeError included; too many fields too
        raise InvalidRequest(
            "The request body is not a well-formed UTF-8 urlencoded form.", code="invalid_body"
        ) from None
    return _collect(pairs)


def _unreadable(request: web.Request, exc: Exception) -> Exception:
    """What a failure to read the body means: the client left, it was too large, or it was
    malformed (every parser error of aiohttp's is about the client's bytes)."""
    if isinstance(exc, web.HTTPException):
        return exc  # 413 past the body cap
    if isinstance(exc, ConnectionError) or client_hung_up(request):
        return ClientGone("The client closed the connection before the body arrived.")
    return InvalidRequest(
        "The request body could not be read: it is not well-formed "
        f"{request.content_type or 'content'} in UTF-8.",
        code="invalid_body",
    )


def _utf8(text: str, what: str) -> str:
    """``text`` if it is valid UTF-8 (aiohttp keeps undecodable bytes as surrogates), else 400."""
    try:
        text.encode()
    except UnicodeEncodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8.", code="invalid_body") from None
    return text


def _reject_repeated(names: Iterable[str]) -> None:
    counts = collections.Counter(names)
    for name, count in counts.items():
        if count > 1:
            why = "Sora takes one reference image" if name == "input_reference" else "send it once"
            raise InvalidRequest(
                f"'{name}' was given {count} times; {why}.", param=name, code="invalid_value"
            )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400."""
    return json_object(await read_body(request))


def json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = loads(body)
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(parsed, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return parsed
