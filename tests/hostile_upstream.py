"""Answers a broken or malicious upstream gives, for ``ScriptedUpstream`` (issue 15).

Each is an ``Answer``: redirects (to another host, or to itself without end), bodies that are
huge or never end (counting what they managed to send), and the Video and task objects a
hostile upstream fills with our secrets in the encodings it might use.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp import web

from tests.fake_upstream import Answer

CHUNK = b"a" * 65536


def redirect(location: str, status: int = 307) -> Answer:
    """Send the caller to ``location`` (absolute, or a path on the same host)."""
    return lambda _: web.Response(status=status, headers={"Location": location})


def loop_to_self(status: int = 302) -> Answer:
    """A redirect back to the very path asked for: an endless loop for a client that follows."""
    return lambda request: web.Response(status=status, headers={"Location": str(request.url)})


@dataclass
class Endless:
    """A 200 JSON answer that never ends; ``sent`` counts the bytes it got out."""

    sent: int = 0
    closed: bool = False

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        try:
            await response.write(b'{"id": "video_x", "status": "queued", "pad": "')
            while True:
                await response.write(CHUNK)
                self.sent += len(CHUNK)
        except (ConnectionResetError, ConnectionError):
            self.closed = True
        return response


def echoes(secret: str) -> str:
    """Upstream text holding ``secret`` as it is, percent-encoded, form-encoded and in base64."""
    b64 = base64.b64encode(secret.encode()).decode()
    return (
        f"Incorrect API key {secret}; request was /v1/videos?key={quote(secret, safe='')} "
        f"form key={quote_plus(secret)} basic {b64}"
    )


def echoes_in_base64(status: int) -> Answer:
    """An error whose message carries the credential the request came with, base64'd as a
    careless upstream might: alone, as ``Basic`` of ``api:key`` and in a URL-safe trace
    without padding, so the key sits at offsets 0, 1 and 2 (mod 3) of the encoded data."""

    def answer(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ").encode()
        alone = base64.b64encode(key).decode()
        basic = base64.b64encode(b"api:" + key).decode()
        trace = base64.urlsafe_b64encode(b"id:" + key + b"\xfe").decode().rstrip("=")
        message = f"Unauthorized: Basic {basic} (key {alone}, trace {trace})"
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": "auth"}
        return web.json_response({"error": error}, status=status)

    return answer


def encoded_forms(secret: str) -> dict[str, str]:
    """What a leak check looks for: the secret and the encodings ``echoes`` uses."""
    return {
        "plain": secret,
        "percent-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "base64": base64.b64encode(secret.encode()).decode().rstrip("="),
    }


# Runs of text base64 could be in, one alphabet at a time ("=" never inside a run).
ALPHABETS = {b"+/": re.compile(r"[A-Za-z0-9+/]+"), b"-_": re.compile(r"[A-Za-z0-9_-]+")}


def base64_readings(text: str) -> Iterator[bytes]:
    """Every way of reading ``text``'s base64-looking runs: each run (standard or URL-safe,
    ``/`` JSON-escaped or not) decoded from each of its first 4 characters, its last partial
    group as far as it goes. Written apart from ``providers.base64_forms``, to check it."""
    text = text.replace("\\/", "/")
    for altchars, runs in ALPHABETS.items():
        for run in runs.findall(text):
            for start in range(4):
                piece = run[start:]
                piece = piece[: len(piece) - 1] if len(piece) % 4 == 1 else piece
                yield base64.b64decode(piece + "=" * (-len(piece) % 4), altchars)


def recoverable(secret: str, text: str) -> bool:
    """Whether ``secret`` can be read back from ``text``: as it is or from any base64 in it."""
    raw = secret.encode()
    return secret in text or any(raw in reading for reading in base64_readings(text))


def failed_video(upstream_id: str, message: str, status: str = "failed") -> dict[str, Any]:
    return {
        "id": upstream_id,
        "object": "video",
        "status": status,
        "progress": 0,
        "created_at": 1,
        "error": {"code": "render_failed", "message": message},
    }


def failed_task(task_id: str, reason: str) -> dict[str, Any]:
    return {"task_id": task_id, "status": "FAILURE", "progress": "0%", "fail_reason": reason}
