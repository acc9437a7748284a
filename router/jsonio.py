"""orjson in one place: every JSON body the proxy reads or writes goes through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

JSON_TYPE = "application/json"
JSON_HEADERS: Mapping[str, str] = {"Content-Type": JSON_TYPE}


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


def json_headers(extra: Mapping[str, str]) -> dict[str, str]:
    """Headers for ``json_response`` built once up front, so hot handlers merge nothing."""
    return {**JSON_HEADERS, **extra}


def json_response(
    value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    if headers is None:
        headers = JSON_HEADERS
    elif "Content-Type" not in headers:
        headers = json_headers(headers)
    return web.Response(body=orjson.dumps(value), status=status, headers=headers)
