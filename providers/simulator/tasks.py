"""What the simulated task formats share (OpenRouter, Gemini, xAI, Ark and fal).

Each of those formats is a ``TaskDialect`` over the one ``JobTable``: a gate that checks the
format's credential and renders an ``ApiError`` in the format's own error body, a job lookup
that 404s, the link of a finished video (the shared credential-free ``/files/{id}.mp4``, the
way these vendors hand out CDN links), and reading a resolution + ratio pair back into the
table's ``WxH`` size. A create goes through ``JobTable.create``, so every fault knob
(rates, words, quota, slow replies) works for every format. Knows nothing of the proxy.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping

from aiohttp import web
from aiohttp.typedefs import Handler
from yarl import URL

from providers.simulator.http import ApiError, check_bearer, invalid, read_fields
from providers.simulator.jobs import CreateParams, JobTable, RenderState, SimulatedJob
from providers.sizes import size_named

MODERATION = "moderation_blocked"  # the code JobTable's refusals carry


class TaskDialect(abc.ABC):
    """One simulated task format; subclasses add routes (``routes``) and an error body."""

    def __init__(self, table: JobTable, *, key_matches: Callable[[str], bool]) -> None:
        self.table = table
        self.key_matches = key_matches

    def app(self) -> web.Application:
        sub = web.Application(middlewares=[self.gate])
        self.routes(sub.router)
        return sub

    @abc.abstractmethod
    def routes(self, router: web.UrlDispatcher) -> None:
        """Add the format's routes, relative to its prefix."""

    def check_key(self, request: web.Request) -> None:
        """Bearer auth, as most of these formats use; Gemini and fal say otherwise."""
        check_bearer(request, self.key_matches)

    @abc.abstractmethod
    def error_response(self, error: ApiError) -> web.Response:
        """``error`` in the format's own error body."""

    @web.middleware
    async def gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            self.check_key(request)
            return await handler(request)
        except ApiError as error:
            return self.error_response(error)

    async def read_create(self, request: web.Request) -> Mapping[str, object]:
        """A create's JSON body, counted as received whether or not it is then refused."""
        self.table.stats.creates_received += 1
        fields, form = await read_fields(request)
        if form:
            raise ApiError(400, "The request body must be JSON.", code="invalid_request")
        return fields

    async def create(self, params: CreateParams, job_id: str) -> SimulatedJob:
        """Admit the create (every fault knob applies) and hold its answer when told to."""
        job = self.table.create(params, job_id=job_id)
        await self.table.hold_reply(job)
        return job

    def find(self, job_id: str) -> tuple[SimulatedJob, RenderState]:
        """The job and its state now; an ``ApiError`` 404 when there is no such job."""
        self.table.stats.gets += 1
        job = self.table.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"Job '{job_id}' not found.", code="not_found")
        return job, self.table.state(job)

    @staticmethod
    def file_link(request: web.Request, job: SimulatedJob) -> str:
        """The credential-free link of ``job``'s MP4, on this simulator's own origin."""
        return str(request.url.origin().join(URL(f"/files/{job.id}.mp4")))


def size_of(resolution: object, ratio: object, *, field: str = "resolution") -> str:
    """The ``WxH`` a resolution + ratio pair renders at; a 400 when no exact size has it."""
    size = (
        size_named(resolution, ratio)
        if isinstance(resolution, str) and isinstance(ratio, str)
        else None
    )
    if size is None:
        raise invalid(field, f"Unsupported resolution and aspect ratio: {resolution}, {ratio}.")
    return size


def whole_seconds(value: object, field: str, low: int, high: int) -> str:
    """A duration field as the table's seconds string; 400 unless a whole number in range."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid(field, f"'{field}' must be a whole number of seconds from {low} to {high}.")
    return str(value)


def required_text(fields: Mapping[str, object], field: str) -> str:
    value = fields.get(field)
    if not isinstance(value, str) or not value:
        raise invalid(field, f"'{field}' is required.", "missing_required_parameter")
    return value
