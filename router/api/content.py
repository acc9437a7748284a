"""Finished assets: from our asset store once copied, else streamed from the provider.

A variant whose copy is whole (``Job.stored_asset``) is served from the asset store
(``router.assets.http``: one ``Range``, ``ETag``, ``If-None-Match``/``If-Range``, sendfile
for the local backend) and never from the upstream again. Before the copy is whole the bytes
come from the rendering provider, never buffered whole, with ``Range`` passed through. A copy
that retention removed answers 404 ``content_expired`` saying when it expired. A job that has
not completed is a 409 (with ``x-should-retry: false``, so the SDK does not hammer it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from providers.base import ProviderError, Rejected
from router import appkeys as keys
from router.api.requests import owned_job
from router.api.stamp import stamp
from router.assets import http as stored_http
from router.errors import InvalidRequest, NotFound, NotReady, UpstreamFailed
from router.records.job import CopyState, Job, JobState, StoredAsset

VARIANTS = ("video", "thumbnail", "spritesheet")


async def get_content(request: web.Request) -> web.StreamResponse:
    job = await owned_job(request)
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
    """Answer with one asset of a completed job (shared by both dialects)."""
    if job.state is not JobState.COMPLETED:
        raise NotReady(
            f"Video '{job.id}' is {job.state.value}; content is available once it has completed.",
            param="video_id",
        )
    expired_at = _copy_expired_at(job, request.app[keys.CLOCK]())
    if expired_at is not None:
        when = datetime.fromtimestamp(expired_at, UTC).isoformat(timespec="seconds")
        raise NotFound(
            f"The stored copy of this video expired at {when.replace('+00:00', 'Z')}.",
            code="content_expired",
        )
    stored = job.stored_asset(variant)
    if stored is not None:
        return await _from_store(request, stored)
    return await _from_upstream(request, job, variant)


def _copy_expired_at(job: Job, now: float) -> float | None:
    """When our copy expired, if it has (retention ran, or is about to)."""
    if job.copy is CopyState.EXPIRED:
        return job.expires_at if job.expires_at is not None else now
    if job.copy is CopyState.STORED and job.expires_at is not None and job.expires_at <= now:
        return job.expires_at
    return None


async def _from_store(request: web.Request, stored: StoredAsset) -> web.StreamResponse:
    request.app[keys.METRICS].content_answers.labels("store").inc()
    answer = stored_http.plan(request.headers, stored.size, stored.sha256)
    assets = request.app[keys.ASSETS]
    return await stored_http.send(request, assets, stored.key, answer, stored.content_type, stamp)


async def _from_upstream(request: web.Request, job: Job, variant: str) -> web.StreamResponse:
    request.app[keys.METRICS].content_answers.labels("upstream").inc()
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
        except ConnectionError:
            if not stored_http.client_hung_up(request):
                raise  # not the client: the upstream broke off
        return response
    finally:
        upstream.close()


ROUTES = (web.get("/v1/videos/{video_id}/content", get_content),)
