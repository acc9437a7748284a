"""The simulated upstream's OpenAI Videos API and its Azure OpenAI twin.

Owns both dialects' handlers and gates over the shared ``JobTable``::

    /v1/videos...          OpenAI Videos API     Authorization: Bearer <key>
    /openai/v1/videos...   Azure OpenAI Sora 2   api-key: <key>, ?api-version=preview|v1

The two differ only in their gate (auth, api-version) and in create (Azure requires a
``model`` and may know only some deployments); every other operation is the same handler.
Errors use the OpenAI envelope ``{"error": {message, type, param, code}}``. The routes
themselves are laid out by ``providers.simulator.server``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler

from providers.simulator.http import (
    MISSING_PARAMETER,
    ApiError,
    check_bearer,
    invalid,
    json_response,
    read_choice,
    read_fields,
    read_prompt,
    unix_seconds,
)
from providers.simulator.jobs import CreateParams, JobTable, SimulatedJob, VideoStatus
from providers.simulator.media import Variant, make_asset, send_asset

_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024", "1920x1080", "1080x1920")
# OpenAI's own lengths plus the 10/15/25 s that OpenAI-compatible gateways also take.
_SECONDS = ("4", "8", "10", "12", "15", "16", "20", "25")
_AZURE_API_VERSIONS = frozenset({"preview", "v1"})


class VideosApi:
    """The ``/videos`` handlers of the OpenAI and Azure dialects, and each dialect's gate."""

    def __init__(
        self,
        table: JobTable,
        *,
        key_matches: Callable[[str], bool],
        deployments: frozenset[str] | None,
    ) -> None:
        self._table = table
        self._key_matches = key_matches
        self._deployments = deployments  # None: Azure serves any model name

    # -- gates: auth, api-version, and the OpenAI error envelope ---------------------------------

    @web.middleware
    async def openai_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            check_bearer(request, self._key_matches)
            return await handler(request)
        except ApiError as error:
            return _openai_error(error)

    @web.middleware
    async def azure_gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            # Azure also takes Entra bearer tokens; a simulated resource has only its key.
            if not self._key_matches(request.headers.get("api-key", "")):
                raise ApiError(
                    401,
                    "Access denied due to invalid subscription key or wrong API endpoint.",
                    code="401",
                )
            version = request.query.get("api-version")
            if version is None:  # Azure answers a bare path as if it did not exist
                raise ApiError(404, "Resource not found", code="404")
            if version not in _AZURE_API_VERSIONS:
                raise ApiError(400, "API version not supported", code="BadRequest")
            return await handler(request)
        except ApiError as error:
            return _openai_error(error)

    # -- handlers --------------------------------------------------------------------------------

    async def create_openai(self, request: web.Request) -> web.Response:
        self._table.stats.creates_received += 1
        params = _parse_create(*await read_fields(request), default_model="sora-2")
        job = self._table.create(params, job_id=_new_video_id())
        await self._table.hold_reply(job)
        return json_response(self.video_object(job, self._table.now()))

    async def create_azure(self, request: web.Request) -> web.Response:
        self._table.stats.creates_received += 1
        params = _parse_create(*await read_fields(request), default_model=None)
        if self._deployments is not None and params.model not in self._deployments:
            raise ApiError(
                404,
                f"The API deployment '{params.model}' does not exist.",
                code="DeploymentNotFound",
                param="model",
                error_type="video_generation_user_error",
            )
        job = self._table.create(params, job_id=_new_video_id())
        await self._table.hold_reply(job)
        return json_response(self.video_object(job, self._table.now()))

    async def retrieve(self, request: web.Request) -> web.Response:
        self._table.stats.gets += 1
        return json_response(self.video_object(self.find(request), self._table.now()))

    async def list_videos(self, request: web.Request) -> web.Response:
        self._table.stats.lists += 1
        order = read_choice(request.query, "order", ("asc", "desc"), "desc")
        limit = _limit(request.query.get("limit", "20"))
        after = request.query.get("after") or None
        try:
            page, more = self._table.page(after=after, limit=limit, descending=order == "desc")
        except KeyError:
            raise ApiError(400, f"Invalid 'after': no video '{after}'.", param="after") from None
        now = self._table.now()
        return json_response(
            {
                "object": "list",
                "data": [self.video_object(job, now) for job in page],
                "first_id": page[0].id if page else None,
                "last_id": page[-1].id if page else None,
                "has_more": more,
            }
        )

    async def delete(self, request: web.Request) -> web.Response:
        self._table.stats.deletes += 1
        job = self.find(request)
        if not self._table.state(job).status.finished:
            raise ApiError(
                400,
                f"Video '{job.id}' is still rendering; only completed or failed videos can be"
                " deleted.",
                param="video_id",
            )
        del self._table.jobs[job.id]
        return json_response({"id": job.id, "object": "video.deleted", "deleted": True})

    async def content(self, request: web.Request) -> web.StreamResponse:
        self._table.stats.content_downloads += 1
        job = self.find(request)
        variants = [v.value for v in Variant]
        variant = Variant(read_choice(request.query, "variant", variants, "video"))
        self._table.check_downloadable(job)
        video_bytes = self._table.settings.video_bytes
        return await send_asset(
            request,
            make_asset(job.id, variant, video_bytes, size=job.size, seconds=int(job.seconds)),
        )

    async def remix(self, request: web.Request) -> web.Response:
        self._table.stats.remixes += 1
        source = self.find(request)
        fields, _ = await read_fields(request)
        prompt = read_prompt(fields)
        if self._table.state(source).status is not VideoStatus.COMPLETED:
            raise ApiError(
                400,
                f"Video '{source.id}' is not completed and cannot be remixed.",
                param="video_id",
            )
        params = CreateParams(prompt, source.model, source.size, source.seconds)
        job = self._table.start(params, job_id=_new_video_id(), remixed_from=source.id)
        return json_response(self.video_object(job, self._table.now()))

    # -- the Video object --------------------------------------------------------------------

    def find(self, request: web.Request) -> SimulatedJob:
        video_id = request.match_info["video_id"]
        job = self._table.jobs.get(video_id)
        if job is None:
            raise ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")
        return job

    def video_object(self, job: SimulatedJob, now: float) -> dict[str, object]:
        state = job.state_at(now, self._table.settings)
        error = state.error
        return {
            "id": job.id,
            "object": "video",
            "model": job.model,
            "status": state.status.value,
            "progress": state.progress,
            "created_at": int(job.created_at),
            "completed_at": unix_seconds(state.finished_at),
            "expires_at": unix_seconds(state.expires_at),
            "prompt": job.prompt,
            "size": job.size,
            "seconds": job.seconds,
            "remixed_from_video_id": job.remixed_from_video_id,
            "error": None if error is None else {"code": error.code, "message": error.message},
        }


def _parse_create(
    fields: Mapping[str, object], form: bool, *, default_model: str | None
) -> CreateParams:
    prompt = read_prompt(fields)
    model = fields.get("model", default_model)
    if model is None:
        raise invalid("model", "Missing required parameter: 'model'.", MISSING_PARAMETER)
    if not isinstance(model, str) or not model:
        raise invalid("model", "Invalid 'model': expected a non-empty string.", "invalid_type")
    input_bytes, input_reference = _input_reference(fields.get("input_reference"), form)
    return CreateParams(
        characters=character_ids(fields, form),
        prompt=prompt,
        model=model,
        size=read_choice(fields, "size", _SIZES, "720x1280"),
        seconds=read_choice(fields, "seconds", _SECONDS, "4"),
        input_bytes=input_bytes,
        input_reference=input_reference,
    )


def _input_reference(value: object, form: bool) -> tuple[bytes | None, str | None]:
    """The uploaded image, or the image_url or file_id named instead; both None without one."""
    if value is None:
        return None, None
    if form and isinstance(value, web.FileField):
        return value.file.read(), None
    if not form and isinstance(value, dict):
        reference = value.get("image_url") or value.get("file_id")
        if isinstance(reference, str):
            return None, reference
    expected = "a file" if form else "an object with 'image_url' or 'file_id'"
    message = f"Invalid type for 'input_reference': expected {expected}."
    raise invalid("input_reference", message, "invalid_type")


def character_ids(fields: Mapping[str, object], form: bool) -> tuple[str, ...]:
    """``characters: [{"id"}]`` from JSON, or the form fields ``characters[N][id]`` and
    ``characters[][id]`` the SDK flattens it into."""
    if not form:
        value = fields.get("characters", [])
        entries = value if isinstance(value, list) else [None]
        ids = [e.get("id") if isinstance(e, dict) else None for e in entries]
    else:
        getall = getattr(fields, "getall", None)
        names = [k for k in dict.fromkeys(fields) if k.startswith("characters[")]
        ids = [v for name in names for v in (getall(name) if getall else [fields[name]])]
    if not all(isinstance(i, str) and i for i in ids):
        raise invalid("characters", "Invalid 'characters': expected a list of {\"id\": ...}.")
    return tuple(str(i) for i in ids)


def _limit(raw: str) -> int:
    if not raw.isdigit() or not 0 <= int(raw) <= 100:
        raise invalid("limit", "Invalid 'limit': expected an integer from 0 to 100.")
    return int(raw)


def _openai_error(error: ApiError) -> web.Response:
    envelope = {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }
    return json_response(envelope, status=error.status, headers=error.headers)


def _new_video_id() -> str:
    return "video_" + secrets.token_hex(24)
