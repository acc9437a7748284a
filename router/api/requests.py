"""What both client dialects share to read a request: the body readers, the owner check, and
the create fields -> a ``CreateRequest`` (or a 400 naming the field).

Checks run against the configured catalogue and the key's allowed models only; whether some
provider can render the result is the selector's question. A form field given twice is a 400,
never a silent pick.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from providers.base import InputReference
from router import appkeys as keys
from router.access.auth import ClientKey
from router.config.model import Config
from router.errors import InvalidRequest, NotFound
from router.jobs.webhooks import callback_refusal
from router.jsonio import loads
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
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise InvalidRequest(
        f"Invalid type for 'seconds': expected a string of digits, got {value!r}.",
        param="seconds",
        code="invalid_type",
    )


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


def owned_job(request: web.Request, param: str = "video_id") -> Job:
    """The job named by the path's ``param``, if the caller's key owns it; 404 otherwise.

    Both dialects look jobs up here, so tenancy is the same whichever one a client speaks.
    """
    job_id = request.match_info[param]
    job = request.app[keys.STORE].get(job_id)
    if job is None or job.owner != request[keys.CLIENT_KEY].name:
        raise NotFound(f"No video found with id '{job_id}'.", param=param)
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


async def read_create_body(request: web.Request) -> dict[str, Any]:
    """JSON or multipart into one dict; an uploaded file stays an ``InputReference``.

    A form field given twice is a 400: keeping one silently would render something the
    client did not ask for (Sora takes one reference image). The exception is a list field
    in the SDK's flattened form (``characters[][id]``, a name with ``[]``): its values are
    kept as a list, in order.
    """
    if request.content_type == "application/json":
        return await read_json_object(request)
    if request.content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.post()
        except (ValueError, HttpProcessingError):  # no boundary, a broken part, a nameless field
            raise InvalidRequest(
                "The form body could not be read: it is not well-formed multipart/form-data.",
                code="invalid_body",
            ) from None
        _reject_repeated(name for name, _ in form.items() if "[]" not in name)
        fields: dict[str, Any] = {}
        for name, value in form.items():
            if "[]" in name:
                fields.setdefault(name, []).append(value)
            elif isinstance(value, web.FileField):
                fields[name] = InputReference(
                    data=value.file.read(),
                    filename=value.filename or "input",
                    content_type=value.content_type or "application/octet-stream",
                )
            else:
                fields[name] = value
        return fields
    raise InvalidRequest(
        "Send the body as application/json or multipart/form-data.", code="unsupported_content_type"
    )


def _reject_repeated(names: Iterable[str]) -> None:
    counts = collections.Counter(names)
    for name, count in counts.items():
        if count > 1:
            why = "Sora takes one reference image" if name == "input_reference" else "send it once"
            raise InvalidRequest(
                f"'{name}' was given {count} times; {why}.", param=name, code="invalid_value"
            )


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400."""
    try:
        body = loads(await request.read())
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return body


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
