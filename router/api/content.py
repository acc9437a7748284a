"""Finished assets, streamed from the provider that rendered them; never buffered whole.

``Range`` goes through to the upstream and its 206 answer comes back, so players can seek.
A job that has not completed is a 409 (with ``x-should-retry: false``, so the SDK does not
hammer it).
"""

from __future__ import annotations

from aiohttp import web

from providers.base import ProviderError, Rejected
from router import appkeys as keys
from router.api.requests import owned_job
from router.api.stamp import stamp
from router.errors import InvalidRequest, NotFound, NotReady, UpstreamFailed
from router.records.job import Job, JobState

VARIANTS = ("video", "thumbnail", "spritesheet")


async def get_content(request: web.Request) -> web.StreamResponse:
    job = owned_job(request)
    variant = request.query.get("variant", "video")
    if variant not in VARIANTS:
        raise InvalidRequest(
            f"Invalid value for 'variant': {variant!r}. Supported values are: "
            f"{', '.join(VARIANTS)}.",
            param="variant",
            code="invalid_value",
        )
    return await stream_asset(request, job, variant)


async def stream_asset(request: web.Request, job: Job, variant: str) -> web.StreamResponse:
    """Relay one asset of a completed job to the client (shared by both dialects)."""
    if job.state is not JobState.COMPLETED:
        raise NotReady(
            f"Video '{job.id}' is {job.state.value}; content is available once it has completed.",
            param="video_id",
        )
    entry = request.app[keys.SELECTOR].rendering_provider(job)
    try:
        upstream = await entry.adapter.open_content(
            job.current.upstream_id, variant, request.headers.get("Range")
        )
    except ProviderError as exc:
        if exc.status == 404:
            raise NotFound(
                "The provider no longer has this video's content.", code="content_expired"
            ) from exc
        if isinstance(exc, Rejected) and exc.sent is False:
            # The adapter refused before calling out: its wire format has no such asset.
            raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from exc
        raise UpstreamFailed("The provider failed to serve this video's content.") from exc
    try:
        response = web.StreamResponse(status=upstream.status, headers=upstream.headers)
        response.content_type = upstream.content_type
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        stamp(request, response)
        await response.prepare(request)
        try:
            async for chunk in upstream.chunks():
                await response.write(chunk)
            await response.write_eof()
        except ConnectionResetError:
            if request.transport is not None and not request.transport.is_closing():
                raise  # not the client: the upstream broke off
            # The client hung up mid-download, which clients do: not a failure of ours to log,
            # and nothing is left to answer.
        return response
    finally:
        upstream.close()


ROUTES = (web.get("/v1/videos/{video_id}/content", get_content),)
