"""What both client dialects share to handle a request: admission on the headers, the owner
check, and the create fields -> a ``CreateRequest`` (or a 400 naming the field). The bodies
themselves are read by ``router.api.bodies``.

Checks run against the configured catalogue and the key's allowed models only; whether some
provider can render the result is the selector's question.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from providers.base import InputReference
from router import appkeys as keys
from router.access.auth import ClientKey
from router.config.model import Config
from router.errors import InvalidRequest, NotFound
from router.jobs.webhooks import callback_refusal
from router.limits.local import Hold
from router.records.job import Job
from router.records.request import CreateRequest


def build_create(
    config: Config,
    key: ClientKey,
    *,
    prompt: object,
    model: object,
    size: object,
    seconds: object,
    input_reference: InputReference | None,
    characters: tuple[str, ...] = (),
    watermark: bool | None = None,
    private: bool | None = None,
) -> CreateRequest:
    text = check_prompt(prompt, config.server.max_prompt_chars)
    name = config.default_model if model is None else model
    if not isinstance(name, str) or name not in config.models:
        known = ", ".join(config.models)
        raise InvalidRequest(
            f"Unknown model {name!r}. Available models: {known}.",
            param="model",
            code="model_not_found",
        )
    key.check_model(name)
    spec = config.models[name]
    chosen_size = spec.default_size if size is None else size
    if chosen_size not in spec.sizes:
        raise InvalidRequest(
            f"Invalid value for 'size': {chosen_size!r}. Supported values for {name} are: "
            f"{', '.join(spec.sizes)}.",
            param="size",
            code="invalid_value",
        )
    length = spec.default_seconds if seconds is None else _seconds(seconds)
    if length not in spec.seconds:
        raise InvalidRequest(
            f"Invalid value for 'seconds': '{seconds}'. Supported values for {name} are: "
            f"{', '.join(repr(str(s)) for s in spec.seconds)}.",
            param="seconds",
            code="invalid_value",
        )
    return CreateRequest(
        model=name,
        prompt=text,
        size=str(chosen_size),
        seconds=length,
        input_reference=input_reference,
        characters=characters,
        watermark=watermark,
        private=private,
    )


def check_prompt(value: object, limit: int) -> str:
    """A non-empty prompt within ``limit`` characters (create and remix alike), or a 400."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(
            "'prompt' is required and must be a non-empty string.",
            param="prompt",
            code="invalid_value" if value else "missing_required_parameter",
        )
    if len(value) > limit:
        raise InvalidRequest(
            f"'prompt' is longer than {limit} characters.",
            param="prompt",
            code="string_above_max_length",
        )
    return value


def _seconds(value: object) -> int:
    """``seconds`` arrives as a string from the SDK; integers are tolerated."""
    number = ascii_int(value)
    if number is None:
        raise InvalidRequest(
            "Invalid type for 'seconds': expected a string of digits.",
            param="seconds",
            code="invalid_type",
        )
    return number


def read_callback_url(config: Config, value: object, param: str) -> str | None:
    """A per-request webhook URL (``callback_url``, relay ``notify_hook``), or a 400."""
    if value is None:
        return None
    why = (
        callback_refusal(value, config.webhooks.allow_private_addresses)
        if isinstance(value, str)
        else "must be a string"
    )
    if why is not None:
        raise InvalidRequest(f"'{param}' {why}.", param=param, code="invalid_value")
    return str(value)


async def owned_job(request: web.Request, param: str = "video_id") -> Job:
    """The job named by the path's ``param``, if the caller's key owns it; 404 otherwise.

    Both dialects look jobs up here, so tenancy is the same whichever one a client speaks.
    A job in memory (``Views.get``) costs no await; else the store is read.
    """
    job = owned_job_now(request, param)
    if job is None:
        job_id = request.match_info[param]
        job = await request.app[keys.VIEWS].read(job_id)
        if job is None or job.owner != request[keys.CLIENT_KEY].name:
            raise NotFound(f"No video found with id '{job_id}'.", param=param)
    return job


def owned_job_now(request: web.Request, param: str = "video_id") -> Job | None:
    """``owned_job`` from memory without an await (the client poll's hot path): the job, a
    404 when another key owns it, or None when it is not in memory (then ``owned_job``)."""
    job = request.app[keys.VIEWS].get(request.match_info[param])
    if job is not None and job.owner != request[keys.CLIENT_KEY].name:
        raise NotFound(f"No video found with id '{job.id}'.", param=param)
    return job


def reject_unknown(fields: Mapping[str, object], known: frozenset[str]) -> None:
    """A 400 naming the first field outside ``known``, as OpenAI answers unknown arguments."""
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InvalidRequest(
            f"Unrecognized request argument supplied: {unknown[0]}.",
            param=unknown[0],
            code="unknown_parameter",
        )


@dataclass(slots=True)
class Admission:
    """A create admitted on its headers: the key's slot (None: the create admits itself after
    its body), and the job that took it, if any."""

    hold: Hold | None
    job: Job | None = None

    @property
    def job_id(self) -> str | None:
        """The id the job must have: its slot's (``router.limits.local``)."""
        return None if self.hold is None else self.hold.token


class HeaderAdmission:
    """Take the key's rate and concurrency slot before the body is read, so a key over its
    limits is a 429 at once instead of after a (possibly slow, large) upload. The slot goes
    back on the way out unless the job set on the admission holds it.

    A create with an ``Idempotency-Key`` is admitted after its body, as before: it may be a
    retry of a create that went through, which answers with that job and must take no slot
    and no rate (``router.jobs.idempotency``); its body is bounded by the body timeouts.

    A class, not an ``asynccontextmanager``: that is an async generator per create, which the
    loop registers and finalises (~1% of a create's CPU, bench/README.md "Issue 21, third
    pass").
    """

    __slots__ = ("_admission", "_idempotency_key", "_request")

    def __init__(self, request: web.Request, idempotency_key: str | None) -> None:
        self._request = request
        self._idempotency_key = idempotency_key
        self._admission = Admission(None)

    async def __aenter__(self) -> Admission:
        if self._idempotency_key is None:
            request = self._request
            hold = await request.app[keys.DISPATCHER].admit(request[keys.CLIENT_KEY].name)
            self._admission = Admission(hold)
        return self._admission

    async def __aexit__(self, *raised: object) -> None:
        hold, job = self._admission.hold, self._admission.job
        if hold is not None and (
            job is None or self._request.app[keys.LIMITS].hold_of(job.id) is not hold
        ):
            self._request.app[keys.LIMITS].release(hold)


def ascii_int(value: object, *, digits: int = 6) -> int | None:
    """A count given as an int or a string of ASCII digits (at most ``digits``); None if not.

    ``str.isdigit`` takes a superscript two and the Arabic-Indic and fullwidth fours, and
    ``int`` reads the last two; neither is what a client meant by a number, and thousands of
    digits make ``int`` itself fail."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and 0 < len(value) <= digits and value.isascii() and value.isdigit():
        return int(value)
    return None


def input_reference(value: object) -> InputReference | None:
    """A file part, ``{"image_url": ...}``, or (relay style) a bare URL string."""
    if value is None or isinstance(value, InputReference):
        return value
    if isinstance(value, dict) and set(value) == {"image_url"} and is_image_url(value["image_url"]):
        return InputReference(url=value["image_url"])
    if isinstance(value, str) and is_image_url(value):
        return InputReference(url=value)
    raise InvalidRequest(
        "Invalid 'input_reference': upload an image file, or give {\"image_url\": URL}.",
        param="input_reference",
        code="invalid_type",
    )


def is_image_url(value: object) -> bool:
    """An http(s) URL the upstream fetches, or an inline ``data:image/`` URL."""
    return isinstance(value, str) and value.startswith(("https://", "http://", "data:image/"))
