"""An outside provider faked over real loopback HTTP: it answers what the test scripts.

For wire details the simulator cannot be made to show (exact headers and query strings, odd
status words, error bodies, a second host, an answer held until the test lets go). It records
every request it receives.

It stops within ``STOP_GRACE``: an answer still running then (one the test holds) is
cancelled and a connection still open is closed, where aiohttp's default waits up to 60 s, the
whole of a test's timeout, for either (a client's connection accepted just as the stop begins
has its request dropped, and stays open for as long as that client waits for the answer).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from yarl import URL


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


STOP_GRACE = 1.0  # seconds a stop waits for answers still running before it cancels them

# An answer may be a coroutine function: the test can hold a request until it lets go.
Answer = Callable[[web.Request], web.StreamResponse | Awaitable[web.StreamResponse]]


@dataclass
class ScriptedUpstream:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    host: str = "127.0.0.1"  # another loopback address (127.0.0.2) plays another host
    _runner: web.AppRunner | None = None

    def reply(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        status: int = 200,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        """Answer ``method path`` with ``payload`` as JSON (or raw ``body``) from now on."""
        data = orjson.dumps(payload) if body is None else body
        kind = content_type or ("application/json" if body is None else "application/octet-stream")
        self.answers[method, path] = lambda _: web.Response(
            body=data, status=status, content_type=kind, headers=headers
        )

    def answer(self, method: str, path: str, answer: Answer) -> None:
        self.answers[method, path] = answer

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=STOP_GRACE)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0).start()
        self.url = str(URL.build(scheme="http", host=self.host, port=self._port()))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _port(self) -> int:
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=await request.read(),
            )
        )
        answer = self.answers.get((request.method, request.path))
        if answer is None:
            return web.json_response({"code": "not_found", "message": "no such path"}, status=404)
        reply = answer(request)
        return await reply if inspect.isawaitable(reply) else reply


ScriptedFactory = Callable[..., Awaitable[ScriptedUpstream]]  # the ``scripted`` fixture
