"""The relay task dialect served to clients: thin handlers over the same job core as ``/v1``.

Scripts written for new-api-style resellers create with ``aspect_ratio`` + ``hd`` and a
``duration`` (string or int), get ``{"task_id"}``, and poll a task object with upper-case
statuses, ``"NN%"`` progress and a plain link at ``data.output``. These handlers only translate:
the relay fields become a catalogue size and seconds, then ``router.api.requests.build_create`` and
the dispatcher do exactly what they do for ``POST /v1/videos``, ``Idempotency-Key`` included. A
task is a job: same id, same owner, visible in both dialects. Errors keep the OpenAI envelope,
with ``param`` naming the field the relay client sent. The link at ``data.output`` is signed
(``router.access.links``), so it works without a key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from aiohttp import web

from providers.base import InputReference
from providers.sizes import aspect_ratio_of, dimensions
from router import appkeys as keys
from router.access.links import CONTENT_PREFIX, LinkSigner
from router.api.bodies import read_json_object
from router.api.content import stream_asset
from router.api.requests import (
    HeaderAdmission,
    build_create,
    is_image_url,
    owned_job,
    read_callback_url,
    reject_unknown,
)
from router.config.model import Config
from router.errors import InvalidRequest, NotFound
from router.jobs.idempotency import key_from
from router.jsonio import json_response
from router.records.job import Job, JobState

# The relay resellers' task route, served to relay-dialect clients (the same path the relay
# upstream kind calls, by design: scripts change only host and key).
TASKS_ROUTE = "/v2/videos/generations"
CREATE_FIELDS = frozenset(
    {
        "prompt",
        "model",
        "aspect_ratio",
        "duration",
        "hd",
        "images",
        "notify_hook",
        "watermark",
        "private",
    }
)
TASK_STATUS = {
    JobState.QUEUED: "NOT_START",
    JobState.IN_PROGRESS: "IN_PROGRESS",
    JobState.COMPLETED: "SUCCESS",
    JobState.FAILED: "FAILURE",
}
# The core names catalogue fields; a relay client knows them by these names.
RELAY_PARAMS = {"size": "aspect_ratio", "seconds": "duration", "input_reference": "images"}


def task_object(job: Job, links: LinkSigner) -> dict[str, Any]:
    """The wire shape of a job for relay clients; times are unix seconds or null.

    ``start_time`` is when the current attempt was submitted, once it has left the queue.
    """
    reason = ""
    if job.error_code is not None:  # relay clients match on text, so the code goes in it too
        reason = f"{job.error_message} ({job.error_code})" if job.error_message else job.error_code
    started = None if job.state is JobState.QUEUED else job.current.submitted_at
    return {
        "task_id": job.id,
        "platform": "sora",
        "action": "generate",
        "status": TASK_STATUS[job.state],
        "progress": f"{job.progress}%",
        "fail_reason": reason,
        "submit_time": int(job.created_at),
        "start_time": None if started is None else int(started),
        "finish_time": None if job.completed_at is None else int(job.completed_at),
        "data": {"output": links.link(job.id, job.expires_at)}
        if job.state is JobState.COMPLETED
        else None,
    }


async def create_task(request: web.Request) -> web.Response:
    idempotency_key = key_from(request.headers)
    async with HeaderAdmission(request, idempotency_key) as admission:
        fields = await read_json_object(request)
        reject_unknown(fields, CREATE_FIELDS)
        config, key = request.app[keys.CONFIG].current, request[keys.CLIENT_KEY]
        with _in_relay_terms():
            create = build_create(
                config,
                key,
                prompt=fields.get("prompt"),
                model=fields.get("model"),
                size=_catalogue_size(config, fields),
                seconds=fields.get("duration"),
                input_reference=_image(fields.get("images")),
                watermark=_flag(fields, "watermark"),
                private=_flag(fields, "private"),
            )
            create.callback_url = read_callback_url(
                config, fields.get("notify_hook"), "notify_hook"
            )
            admission.job = job = await request.app[keys.IDEMPOTENCY].run(
                key.name,
                idempotency_key,
                create,
                lambda claim, job_id: request.app[keys.DISPATCHER].create(
                    key.name, create, claim, job_id, admission.hold
                ),
                job_id=admission.job_id,
            )
    return json_response({"task_id": job.id})


async def get_task(request: web.Request) -> web.Response:
    job = await owned_job(request, "task_id")
    return json_response(task_object(job, request.app[keys.LINKS]))


async def get_linked_content(request: web.Request) -> web.StreamResponse:
    """The video behind a signed link; the link is the credential, so no key is asked for."""
    job_id = request.match_info["job_id"]
    request.app[keys.LINKS].verify(job_id, request.query.get("expires"), request.query.get("sig"))
    job = await request.app[keys.VIEWS].read(job_id)
    if job is None:
        raise NotFound("This video no longer exists.", code="not_found")
    return await stream_asset(request, job, "video")


def _catalogue_size(config: Config, fields: dict[str, Any]) -> str | None:
    """The model's size with the asked aspect ratio: its largest with ``hd``, else its smallest.

    None (neither field given, or a model ``build_create`` will refuse) leaves the model's
    default size.
    """
    ratio, hd = fields.get("aspect_ratio"), fields.get("hd")
    if hd is not None and not isinstance(hd, bool):
        raise InvalidRequest("'hd' must be true or false.", param="hd", code="invalid_type")
    model = fields.get("model")
    name = config.default_model if model is None else model
    spec = config.models.get(name) if isinstance(name, str) else None
    if spec is None or (ratio is None and hd is None):
        return None
    wanted = aspect_ratio_of(spec.default_size) if ratio is None else ratio
    sizes = sorted((s for s in spec.sizes if aspect_ratio_of(s) == wanted), key=_area)
    if not sizes:
        offered = sorted({r for s in spec.sizes if (r := aspect_ratio_of(s)) is not None})
        raise InvalidRequest(
            f"Invalid value for 'aspect_ratio': {ratio!r}. Supported values for {spec.name} "
            f"are: {', '.join(offered)}.",
            param="aspect_ratio",
            code="invalid_value",
        )
    return sizes[-1] if hd else sizes[0]


def _flag(fields: dict[str, Any], name: str) -> bool | None:
    """``watermark`` or ``private``: true, false or absent; sent on to relay upstreams only."""
    value = fields.get(name)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(f"'{name}' must be true or false.", param=name, code="invalid_type")
    return value


def _area(size: str) -> int:
    width, height = dimensions(size)
    return width * height


def _image(value: object) -> InputReference | None:
    """``images``: relays render from the first image only, so one is all that is accepted."""
    if value is None or value == []:
        return None
    if not isinstance(value, list) or len(value) != 1 or not is_image_url(value[0]):
        raise InvalidRequest(
            "'images' must be a list holding one image URL (https:// or data:image/).",
            param="images",
            code="invalid_value",
        )
    return InputReference(url=value[0])


@contextlib.contextmanager
def _in_relay_terms() -> Iterator[None]:
    """Rename ``param`` in a 400 from the core to the field the relay client sent."""
    try:
        yield
    except InvalidRequest as exc:
        exc.param = RELAY_PARAMS.get(exc.param or "", exc.param)
        raise


ROUTES = (
    web.post(TASKS_ROUTE, create_task),
    web.get(TASKS_ROUTE + "/{task_id}", get_task),
    web.get(CONTENT_PREFIX + "{job_id}", get_linked_content),
)
