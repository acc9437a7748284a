"""Headers built once for JSON answers (``router.jsonio.json_headers``): read-only, copied
into each answer."""

from __future__ import annotations

import pytest
from aiohttp import web
from multidict import CIMultiDict

from router.jsonio import JSON_HEADERS, JSON_TYPE, json_headers, json_response


def test_prebuilt_headers_are_read_only_and_copied_into_each_answer() -> None:
    poll = json_headers({"openai-poll-after-ms": "1000"})
    assert dict(poll) == {"Content-Type": JSON_TYPE, "openai-poll-after-ms": "1000"}
    assert dict(JSON_HEADERS) == {"Content-Type": JSON_TYPE}
    with pytest.raises(TypeError):
        poll["X"] = "y"  # type: ignore[index]
    answer = web.Response(body=b"{}", headers=poll)
    answer.headers["X-Request-Id"] = "req_1"
    assert "X-Request-Id" not in poll
    # a name given again in another case replaces the first, as headers do
    replaced = json_headers({"content-type": "text/plain"})
    assert len(replaced) == 1
    assert replaced["Content-Type"] == "text/plain"
    assert isinstance(answer.headers, CIMultiDict)


def test_json_response_adds_the_json_type_to_headers_that_lack_one() -> None:
    answer = json_response({"a": 1}, status=429, headers={"Retry-After": "3"})
    assert answer.status == 429
    assert dict(answer.headers) == {"Content-Type": JSON_TYPE, "Retry-After": "3"}
    assert answer.body == b'{"a":1}'
    typed = json_response({}, headers={"content-type": "application/problem+json"})
    assert typed.headers["Content-Type"] == "application/problem+json"
    assert len(typed.headers) == 1
