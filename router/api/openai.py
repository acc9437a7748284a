"""The OpenAI Videos API served to clients: thin handlers over the dispatcher and the store.

Every answer is the full Video object under the proxy's id; reads come from the store's
memory and never reach an upstream. Another key's job is indistinguishable from an unknown
id (404), in lists as well. With an ``Idempotency-Key`` header a create or remix happens
once per key (``router.jobs.idempotency``). Bodies are read and checked by
``router.api.requests``, which the relay dialect shares.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router import appkeys as keys
from router.api.bodies import read_create_body
from router.api.characters import cast, form_fields
from router.api.requests import (
    HeaderAdmission,
    ascii_int,
    build_create,
    check_prompt,
    input_reference,
    owned_job,
    owned_job_now,
    read_callback_url,
    reject_unknown,
)
from router.errors import InvalidRequest
from router.jobs.idempotency import Remix, key_from
from router.jsonio import JSON_HEADERS, dumps, json_response
from router.records.job import Job

CREATE_FIELDS = frozenset(
    {"prompt", "model", "seconds", "size", "input_reference", "characters", "callback_url"}
)
REMIX_FIELDS = frozenset({"prompt"})
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
VIDEO_PATH = "/v1/videos/{video_id}"
_VIDEO_PREFIX = "/v1/videos/"


def video_object(job: Job) -> dict[str, Any]:
    """The wire shape of a job; every field the spec lists is present, nullable ones as null."""
    error = None
    if job.error_code is not None:
        error = {"code": job.error_code, "message": job.error_message or ""}
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": job.state.value,
        "progress": job.progress,
        "created_at": int(job.created_at),
        "completed_at": None if job.completed_at is None else int(job.completed_at),
        "expires_at": None if job.expires_at is None else int(job.expires_at),
        "prompt": job.prompt,
        "size": job.size,
        "seconds": str(job.seconds),
        "remixed_from_video_id": job.remixed_from,
        "error": error,
    }


async def create_video(request: web.Request) -> web.Response:
    idempotency_key = key_from(request.headers)
    async with HeaderAdmission(request, idempotency_key) as admission:
        fields = await read_create_body(request)
        if fields.keys() <= CREATE_FIELDS:  # the usual body: nothing unknown, no form slots
            casting = await cast(request, fields) if "characters" in fields else ()
        else:
            casting = await cast(request, fields)
            slots = form_fields(fields)
            unknown = {name: v for name, v in fields.items() if name not in slots}
            reject_unknown(unknown, CREATE_FIELDS)
        config = request.app[keys.CONFIG].current
        create = build_create(
            config,
            request[keys.CLIENT_KEY],
            prompt=fields.get("prompt"),
            model=fields.get("model"),
            size=fields.get("size"),
            seconds=fields.get("seconds"),
            input_reference=input_reference(fields.get("input_reference")),
            characters=casting,
        )
        create.callback_url = read_callback_url(config, fields.get("callback_url"), "callback_url")
        admission.job = job = await request.app[keys.IDEMPOTENCY].run(
            request[keys.CLIENT_KEY].name,
            idempotency_key,
            create,
            lambda claim, job_id: request.app[keys.DISPATCHER].create(
                request[keys.CLIENT_KEY].name, create, claim, job_id, admission.hold
            ),
            job_id=admission.job_id,
        )
    return web.Response(body=video_body(job), headers=JSON_HEADERS)


def video_body(job: Job) -> bytes:
    """The serialised Video object; built once per job version, since clients poll a job
    many times between changes."""
    served = job.served
    if served is not None and served[0] == job.version:
        return served[1]
    # orjson trims its work buffer in place, and a trimmed buffer kept for the job's life pins
    # the allocator's slack with it (several KiB a job); a copy of exact size costs next to
    # nothing and keeps only the body (bench/README.md, "Figures behind the design").
    body = memoryview(dumps(video_object(job))).tobytes()
    job.served = (job.version, body)
    return body


async def get_video(request: web.Request) -> web.Response:
    job = owned_job_now(request) or await owned_job(request)
    return web.Response(body=video_body(job), headers=request.app[keys.POLL_HEADERS])


async def list_videos(request: web.Request) -> web.Response:
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest(
            "'order' must be 'asc' or 'desc'.", param="order", code="invalid_value"
        )
    limit = ascii_int(query.get("limit", str(LIST_LIMIT_DEFAULT)), digits=3)
    if limit is None or not 0 <= limit <= LIST_LIMIT_MAX:
        raise InvalidRequest(
            f"'limit' must be an integer from 0 to {LIST_LIMIT_MAX}.",
            param="limit",
            code="invalid_value",
        )
    page, has_more = await request.app[keys.STORE].page(
        request[keys.CLIENT_KEY].name, after=query.get("after"), limit=max(limit, 1), order=order
    )
    if limit == 0:  # an empty page that still says whether there is more
        page, has_more = [], bool(page)
    data = [video_object(job) for job in page]
    body = {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
    return json_response(body, headers=request.app[keys.POLL_HEADERS])


async def delete_video(request: web.Request) -> web.Response:
    job = await owned_job(request)
    await request.app[keys.DISPATCHER].delete(job)
    await request.app[keys.RETENTION].forget(job)  # our copy goes with the job
    return json_response({"id": job.id, "object": "video.deleted", "deleted": True})


async def remix_video(request: web.Request) -> web.Response:
    source = await owned_job(request)
    idempotency_key = key_from(request.headers)
    body = await read_create_body(request)
    reject_unknown(body, REMIX_FIELDS)
    prompt = check_prompt(
        body.get("prompt"), request.app[keys.CONFIG].current.server.max_prompt_chars
    )
    owner = request[keys.CLIENT_KEY].name
    job = await request.app[keys.IDEMPOTENCY].run(
        owner,
        idempotency_key,
        Remix(source.id, prompt),
        lambda claim, job_id: request.app[keys.DISPATCHER].remix(
            owner, source, prompt, claim, job_id
        ),
    )
    return web.Response(body=video_body(job), headers=JSON_HEADERS)


class VideoPath(web.DynamicResource):
    """The resource of ``VIDEO_PATH`` (the poll, most requests): a prefix test instead of
    aiohttp's regular expression and the dict comprehension after it (~0.6 us a poll, issue 21).

    It matches what aiohttp's own resource for the path matches, and yields the same id: in the
    path as aiohttp hands it over (decoded but for ``%2F`` and ``%25``), a non-empty rest after
    the prefix without ``/``, ``{`` or ``}`` (the pattern aiohttp makes of ``{video_id}``), then
    those two escapes decoded. Everything else (routes, 405s, ``url_for``) is aiohttp's.
    ``tests/api/test_video_path.py`` holds it to aiohttp's resource on any path."""

    def __init__(self) -> None:
        super().__init__(VIDEO_PATH)

    def _match(self, path: str) -> dict[str, str] | None:
        if not path.startswith(_VIDEO_PREFIX):
            return None
        video_id = path[len(_VIDEO_PREFIX) :]
        if not video_id or "/" in video_id or "{" in video_id or "}" in video_id:
            return None
        if "%" in video_id:
            video_id = video_id.replace("%2F", "/").replace("%25", "%")
        return {"video_id": video_id}


ROUTES = (
    # the poll first: aiohttp tries the resources filed under /v1/videos in the order they were
    # registered, and polls are most requests (issue 21: 4% of a poll's CPU)
    web.get(VIDEO_PATH, get_video),
    web.delete(VIDEO_PATH, delete_video),
    web.post("/v1/videos", create_video),
    web.get("/v1/videos", list_videos),
    web.post("/v1/videos/{video_id}/remix", remix_video),
)
