"""The downstream error tree, and ``failure_response``, which renders any failure as the OpenAI
envelope (the handler wrapper ``router.app.fronted`` calls it).

Every error a client sees is ``{"error": {"message", "type", "param", "code"}}`` with the
status below; the ``openai`` SDK maps the status to its exception class and fills ``.code``::

    RouterError (500 server_error)
    ├── InvalidRequest        400  invalid_request_error (param names the field)
    ├── Unauthenticated       401  invalid_api_key
    ├── Forbidden             403  model not allowed for this key, or not an admin key
    ├── NotFound              404  unknown job, route, or another key's job
    ├── MethodNotAllowed      405
    ├── NotReady              409  content asked for before the render completed
    ├── Conflict              409  an Idempotency-Key reused with a different request
    ├── PayloadTooLarge       413
    ├── TooManyRequests       429  with Retry-After
    ├── UpstreamFailed        502  every capable provider failed to take the request
    └── Unavailable           503  no provider can take it now, or shutting down

Handlers raise these; ``failure_response`` is the only place that builds an error body.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from redis.exceptions import RedisError

from router.jsonio import json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class RouterError(Exception):
    status = 500
    type = "server_error"
    default_code: str | None = None
    # The openai SDK retries 408/409/429/5xx; say when a retry cannot help.
    retry_helps = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers = dict(headers or {})

    def to_response(self) -> web.Response:
        headers = dict(self.headers)
        if not self.retry_helps:
            headers["x-should-retry"] = "false"
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return json_response(body, status=self.status, headers=headers)


class InvalidRequest(RouterError):
    status = 400
    type = "invalid_request_error"
    retry_helps = False


class Unauthenticated(RouterError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"
    retry_helps = False


class Forbidden(RouterError):
    status = 403
    type = "invalid_request_error"
    default_code = "permission_denied"
    retry_helps = False


class NotFound(RouterError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"
    retry_helps = False


class MethodNotAllowed(InvalidRequest):
    status = 405
    default_code = "method_not_allowed"


class NotReady(RouterError):
    status = 409
    type = "invalid_request_error"
    default_code = "video_not_ready"
    retry_helps = False


class Conflict(RouterError):
    status = 409
    type = "invalid_request_error"
    default_code = "idempotency_key_reused"
    retry_helps = False  # the SDK retries a 409 unless told not to


class PayloadTooLarge(RouterError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"
    retry_helps = False


class TooManyRequests(RouterError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(
            message, code=code, headers={"Retry-After": str(max(1, math.ceil(retry_after)))}
        )


class UpstreamFailed(RouterError):
    status = 502
    type = "server_error"
    default_code = "upstream_error"


class Unavailable(RouterError):
    status = 503
    type = "server_error"
    default_code = "service_unavailable"


_HTTP_TO_ERROR: dict[int, type[RouterError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
}


def failure_response(request: web.Request, failure: Exception) -> web.Response:
    """Render any failure as the OpenAI envelope; an unexpected one is logged, never leaked.

    A redirect (an ``HTTPException`` below 400) is not a failure and is raised again.
    Dispatches by ``isinstance``, never by raising ``failure`` again here: that would add this
    frame, which holds ``failure``, to its traceback, a cycle that keeps every frame of the
    failed request alive until a GC pass. For a client gone mid-download those frames hold the
    upstream's buffered chunks (tens of MiB under a burst of dropped large downloads).
    """
    if isinstance(failure, RouterError):
        return failure.to_response()
    if isinstance(failure, web.HTTPException):
        status = failure.status
        if status < 400:
            raise failure
        if status == 413:
            return PayloadTooLarge("Request body is larger than this server accepts.").to_response()
        if status == 405:
            return MethodNotAllowed(
                f"Method {request.method} is not allowed on {request.path}."
            ).to_response()
        kind = _HTTP_TO_ERROR.get(status, RouterError)
        message = (
            f"Unknown route {request.method} {request.path}." if status == 404 else failure.reason
        )
        return kind(message).to_response()
    if isinstance(failure, RedisError):  # the fleet's store: never acknowledge unstored work
        log.warning("Redis failed on %s %s (%r)", request.method, request.path, failure)
        return Unavailable(
            "The proxy's job store cannot be reached right now; retry shortly.",
            code="store_unavailable",
            headers={"Retry-After": "1"},
        ).to_response()
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=failure)
    return RouterError("The proxy failed to handle this request.").to_response()
