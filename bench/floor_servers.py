"""The floors: the least an aiohttp + uvloop server can do for each benchmarked route.

One process serves three routes, each the thinnest honest version of what the proxy does:

* ``GET /v1/videos/{id}`` answers pre-serialised Video JSON bytes from a dict: byte for byte
  what the proxy sends for that job (the runner checks), with the same poll-after header;
* ``POST /v1/videos`` forwards the body bytes to the upstream unparsed and relays the answer;
* ``GET /v1/videos/{id}/content`` streams the upstream's body through as it arrives;
* ``GET /files/{path}`` (with ``--files DIR``) answers a file under DIR by aiohttp's own
  ``FileResponse`` (``Range``, ``ETag``, sendfile where the loop has it): the floor for content
  served from the asset store.

Every route checks the Bearer key by one string comparison, the cheapest check that still
refuses a wrong key. The proxy adds validation, routing, job records, durability and metrics
on top of this; the ratio of the two is what those cost.

    python -m bench.floor_servers --port 8101 --key K --upstream URL --upstream-key K2 \
        --videos FILE   # FILE: a JSON object of video id -> Video object
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web

READY_PATH = "/ready"

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_JSON = "application/json"


def build_app(
    *,
    key: str,
    upstream: str,
    upstream_key: str,
    videos: dict[str, bytes],
    poll_after_ms: int,
    files: Path | None = None,
) -> web.Application:
    """The floor app; ``upstream`` is the simulator's ``/v1`` root."""
    expected = f"Bearer {key}"
    upstream_headers = {"Authorization": f"Bearer {upstream_key}"}
    poll_headers = {"openai-poll-after-ms": str(poll_after_ms)}

    async def poll(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        body = videos.get(request.match_info["video_id"])
        if body is None:
            return web.Response(status=404)
        return web.Response(body=body, content_type=_JSON, headers=poll_headers)

    async def create(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        body = await request.read()
        headers = {**upstream_headers, "Content-Type": _JSON}
        async with request.app[_SESSION].post(
            f"{upstream}/videos", data=body, headers=headers
        ) as reply:
            return web.Response(body=await reply.read(), status=reply.status, content_type=_JSON)

    async def content(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        url = f"{upstream}/videos/{request.match_info['video_id']}/content"
        async with request.app[_SESSION].get(url, headers=upstream_headers) as reply:
            response = web.StreamResponse(status=reply.status)
            response.content_type = reply.content_type
            if reply.content_length is not None:
                response.content_length = reply.content_length
            await response.prepare(request)
            async for chunk in reply.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def file(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != expected:
            return web.Response(status=401)
        assert files is not None  # the route exists only with a directory
        path = (files / request.match_info["path"]).resolve()
        if not path.is_relative_to(files):
            return web.Response(status=404)
        return web.FileResponse(path)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def session(app: web.Application) -> AsyncIterator[None]:
        # the proxy's adapters allow 100 connections per provider by default; so does this
        app[_SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))
        yield
        await app[_SESSION].close()

    app = web.Application()
    app.cleanup_ctx.append(session)
    app.router.add_get("/v1/videos/{video_id}", poll)
    app.router.add_post("/v1/videos", create)
    app.router.add_get("/v1/videos/{video_id}/content", content)
    app.router.add_get(READY_PATH, ready)
    if files is not None:
        files = files.resolve()
        app.router.add_get("/files/{path:.+}", file)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--upstream-key", required=True)
    parser.add_argument("--videos", type=Path, required=True)
    parser.add_argument("--poll-after-ms", type=int, required=True)
    parser.add_argument("--files", type=Path, help="serve the files under DIR at /files/")
    args = parser.parse_args()
    objects = orjson.loads(args.videos.read_bytes())
    app = build_app(
        key=args.key,
        upstream=args.upstream,
        upstream_key=args.upstream_key,
        videos={video_id: orjson.dumps(video) for video_id, video in objects.items()},
        poll_after_ms=args.poll_after_ms,
        files=args.files,
    )
    loop = uvloop.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, loop=loop)


if __name__ == "__main__":
    main()
