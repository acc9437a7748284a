"""A client's create fields (either dialect) -> a ``CreateRequest``, or a 400 naming the field.

Checks run against the configured catalogue and the key's allowed models only; whether some
provider can render the result is the selector's question.
"""

from __future__ import annotations

from providers.base import InputReference
from router.api.auth import ClientKey
from router.config.model import Config
from router.errors import InvalidRequest
from router.jobs.dispatch import CreateRequest


def build_create(
    config: Config,
    key: ClientKey,
    *,
    prompt: object,
    model: object,
    size: object,
    seconds: object,
    input_reference: InputReference | None,
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
