"""The HTTP pieces every dialect of the simulated upstream shares.

Owns ``ApiError`` (an error answer a dialect's gate renders in its own body shape), JSON
answers, the bearer-key check, reading a request body as JSON or a form, and the validators
for fields all dialects have (``prompt``, an enumerated value). Validation failures are
OpenAI-style 400s naming the offending ``param``. Knows nothing of jobs, routes or any one
dialect's body shape.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import orjson
from aiohttp import web

MISSING_PARAMETER = "missing_required_parameter"  # the error code of an absent required field
_MAX_PROMPT = 32000


class ApiError(Exception):
    """An error answer; each dialect's middleware renders it in that dialect's body shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type
        self.headers = headers


def invalid(param: str, message: str, code: str = "invalid_value") -> ApiError:
    """A 400 for one bad field."""
    return ApiError(400, message, param=param, code=code)


def json_response(
    payload: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


def check_bearer(request: web.Request, key_matches: Callable[[str], bool]) -> None:
    """Refuse ``request`` with 401 unless its ``Authorization: Bearer`` token is the key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if not key_matches(token if scheme.lower() == "bearer" else ""):
        raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")


async def read_fields(request: web.Request) -> tuple[Mapping[str, object], bool]:
    """The body's fields, and whether they came as a form (multipart or urlencoded)."""
    if request.content_type != "application/json":
        return await request.post(), True
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "We could not parse the JSON body of your request.") from error
    if not isinstance(payload, dict):
        raise ApiError(400, "The JSON body must be an object.", code="invalid_type")
    return payload, False


def read_prompt(fields: Mapping[str, object]) -> str:
    """The required ``prompt``: 1 to 32000 characters, not only whitespace."""
    prompt = fields.get("prompt")
    if prompt is None:
        raise invalid("prompt", "Missing required parameter: 'prompt'.", MISSING_PARAMETER)
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > _MAX_PROMPT:
        raise invalid("prompt", f"Invalid 'prompt': expected 1 to {_MAX_PROMPT} characters.")
    return prompt


def read_choice(
    fields: Mapping[str, object], name: str, allowed: Collection[str], default: str
) -> str:
    """Field ``name`` (``default`` when absent), which must be one of ``allowed``."""
    value = fields.get(name, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON clients send seconds and duration as numbers too
    if not isinstance(value, str) or value not in allowed:
        expected = ", ".join(f"'{a}'" for a in allowed)
        raise invalid(name, f"Invalid value for '{name}': expected one of {expected}.")
    return value


def unix_seconds(moment: float | None) -> int | None:
    """A clock reading as the whole Unix seconds the wire formats use."""
    return None if moment is None else int(moment)
