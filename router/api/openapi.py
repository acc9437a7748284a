"""``GET /openapi.json``: an OpenAPI 3.1 description of every route the proxy answers.

Both client dialects, the content and signed-link downloads, discovery, the admin API and the
health endpoints; every body (``router.api.schemas``) and every error, which is always the
OpenAI envelope. ``tests/api/test_openapi.py`` checks that the paths here are exactly the
routes registered, and runs schemathesis over the document against a live proxy.

The document is built once, from constants: it describes the code, not the config.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router.api import schemas as s
from router.jsonio import json_response

Operation = dict[str, Any]

# The statuses an operation may answer with the error envelope; every operation has these.
_ALWAYS = {"500": "The proxy failed to handle the request."}
_CLIENT = {
    "400": "The request is invalid (`param` names the field).",
    "401": "No valid client key.",
    "408": "The body came slower than `server.min_upload_rate` allows.",
    "413": "The body is larger than `server.max_body_bytes`.",
}
_RENDER = {
    "403": "The key may not use this model.",
    "409": "An `Idempotency-Key` reused for another request.",
    "429": "A key or provider limit; see `Retry-After`.",
    "502": "No provider took the render.",
    "503": "No provider can take it now, or the job store cannot write (`store_unavailable`).",
}
_FOUND = {"404": "No such video of this key's (another key's job looks the same)."}
_ADMIN = {
    "401": "No admin key.",
    "403": "A client key, not the admin key.",
    "404": "The admin API is off (`server.admin_key` is empty), or no such name.",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": s.ref("Error")}}}


def _json(schema: s.Schema, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(
    summary: str,
    ok: dict[str, Any],
    errors: dict[str, str],
    *,
    body: dict[str, s.Schema] | None = None,
    public: bool = False,
    idempotent: bool = False,
    parameters: list[dict[str, Any]] | None = None,
) -> Operation:
    operation: Operation = {"summary": summary, "responses": {"200": ok}}
    for status, description in {**errors, **_ALWAYS}.items():
        operation["responses"][status] = _error(description)
    if public:
        operation["security"] = []
    params = list(parameters or [])
    if idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
            }
        )
    if params:
        operation["parameters"] = params
    if body is not None:
        content = {kind: {"schema": schema} for kind, schema in body.items()}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": s.STRING}


def _query(name: str, schema: s.Schema) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_VIDEO = _json(s.ref("Video"))
_VIDEO_ID = [_path("video_id")]
_BINARY = {"schema": s.BINARY}
_MEDIA = {
    "description": "The asset (206 with `Range`), streamed from the rendering provider.",
    "content": dict.fromkeys(("video/mp4", "image/webp", "image/jpeg"), _BINARY),
}
_JSON = "application/json"
_FORM = "multipart/form-data"


def _media(summary: str, errors: dict[str, str], **extra: Any) -> Operation:
    operation = _operation(summary, _MEDIA, errors, **extra)
    operation["responses"]["206"] = _MEDIA
    return operation


PATHS: dict[str, dict[str, Operation]] = {
    "/v1/videos": {
        "post": _operation(
            "Create a render (JSON or multipart, as the SDK sends it).",
            _VIDEO,
            {**_CLIENT, **_RENDER, "404": "A cast character is not this key's."},
            body={_JSON: s.CREATE_JSON, _FORM: s.CREATE_FORM},
            idempotent=True,
        ),
        "get": _operation(
            "This key's videos, newest first by default.",
            _json(s.ref("VideoList")),
            {"400": _CLIENT["400"], "401": _CLIENT["401"]},
            parameters=[
                _query("after", s.STRING),
                _query("limit", {"type": "integer", "minimum": 0, "maximum": 100}),
                _query("order", {"enum": ["asc", "desc"]}),
            ],
        ),
    },
    "/v1/videos/{video_id}": {
        "get": _operation(
            "A video, from the store.",
            _VIDEO,
            {"401": _CLIENT["401"], **_FOUND},
            parameters=_VIDEO_ID,
        ),
        "delete": _operation(
            "Forget a finished video (and delete it upstream, best effort).",
            _json(s.ref("VideoDeleted")),
            {"400": "The video is not finished.", "401": _CLIENT["401"], **_FOUND},
            parameters=_VIDEO_ID,
        ),
    },
    "/v1/videos/{video_id}/content": {
        "get": _media(
            "The video, thumbnail or spritesheet of a completed render.",
            {
                "400": "Unknown or unavailable variant.",
                "401": _CLIENT["401"],
                "404": "No such video, or its content expired upstream.",
                "409": "The render has not completed.",
                "502": "The provider failed to serve it.",
            },
            parameters=[
                *_VIDEO_ID,
                _query("variant", {"enum": ["video", "thumbnail", "spritesheet"]}),
            ],
        )
    },
    "/v1/videos/{video_id}/remix": {
        "post": _operation(
            "Remix a completed video on the provider that holds it.",
            _VIDEO,
            {**_CLIENT, **_RENDER, **_FOUND},
            body={_JSON: s.REMIX, _FORM: s.REMIX},
            idempotent=True,
            parameters=_VIDEO_ID,
        )
    },
    "/v1/videos/{video_id}/cancel": {
        "post": _operation(
            "An extension of this proxy: stop a render in flight; it ends failed/cancelled.",
            _VIDEO,
            {"400": "The video is already finished.", "401": _CLIENT["401"], **_FOUND},
            parameters=_VIDEO_ID,
        )
    },
    "/v1/videos/{video_id}/events": {
        "get": _operation(
            "A video's changes as server-sent events, until it settles (`Last-Event-ID` resumes).",
            {
                "description": "`id:` the job's version, `event: video`, `data:` the Video object.",
                # OpenAPI 3.1 reads a stream's schema as the schema of each event
                "content": {
                    "text/event-stream": {
                        "schema": {
                            "type": "object",
                            "required": ["id", "event", "data"],
                            "properties": {
                                "id": {"type": "string", "pattern": "^[0-9]+$"},
                                "event": {"const": "video"},
                                "data": {
                                    "type": "string",
                                    "contentMediaType": "application/json",
                                    "contentSchema": s.ref("Video"),
                                },
                            },
                        }
                    }
                },
            },
            {"401": _CLIENT["401"], **_FOUND},
            parameters=[
                *_VIDEO_ID,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                },
            ],
        )
    },
    "/v1/videos/edits": {
        "post": _operation(
            "Edit a completed video of this key's (`video: {id}`) or an uploaded MP4.",
            _VIDEO,
            {**_CLIENT, **_RENDER, **_FOUND},
            body={_JSON: s.EDIT_JSON, _FORM: s.EDIT_FORM},
            idempotent=True,
        )
    },
    "/v1/videos/extensions": {
        "post": _operation(
            "Extend a video by `seconds` (4-20; at most 6 times, 120 s in all).",
            _VIDEO,
            {**_CLIENT, **_RENDER, **_FOUND},
            body={_JSON: s.EXTEND_JSON, _FORM: s.EXTEND_FORM},
            idempotent=True,
        )
    },
    "/v1/videos/characters": {
        "post": _operation(
            "Keep a character (a name and its clip) for this key.",
            _json(s.ref("Character")),
            _CLIENT,
            body={_FORM: s.CHARACTER_FORM},
        )
    },
    "/v1/videos/characters/{character_id}": {
        "get": _operation(
            "A character of this key's.",
            _json(s.ref("Character")),
            {"401": _CLIENT["401"], "404": "No such character of this key's."},
            parameters=[_path("character_id")],
        )
    },
    "/v1/models": {
        "get": _operation(
            "The catalogue models this key may use.",
            _json(s.ref("ModelList")),
            {"401": _CLIENT["401"]},
        )
    },
    "/v1/videos/models": {
        "get": _operation(
            "What each model can do here: sizes, seconds, features, price range.",
            _json(s.ref("VideoModelList")),
            {"401": _CLIENT["401"]},
        )
    },
    "/v2/videos/generations": {
        "post": _operation(
            "Relay dialect: create a task.",
            _json(s.ref("RelayCreated")),
            {**_CLIENT, **_RENDER},
            body={_JSON: s.RELAY_CREATE},
            idempotent=True,
        )
    },
    "/v2/videos/generations/{task_id}": {
        "get": _operation(
            "Relay dialect: a task of this key's.",
            _json(s.ref("RelayTask")),
            {"401": _CLIENT["401"], "404": "No such task of this key's."},
            parameters=[_path("task_id")],
        )
    },
    "/v2/videos/content/{job_id}": {
        "get": _media(
            "A completed video behind a signed link (no key).",
            {
                "403": "The link is tampered with or expired.",
                "404": "No such video, or its content expired upstream.",
                "409": "The render has not completed.",
                "502": "The provider failed to serve it.",
            },
            public=True,
            parameters=[
                _path("job_id"),
                {"name": "expires", "in": "query", "required": True, "schema": s.STRING},
                {"name": "sig", "in": "query", "required": True, "schema": s.STRING},
            ],
        )
    },
    "/admin/providers": {
        "get": _operation("Every provider's state.", _json(s.ref("ProviderList")), _ADMIN)
    },
    "/admin/providers/{name}/drain": {
        "post": _operation(
            "Stop new renders on a provider.",
            _json(s.ref("ProviderRow")),
            _ADMIN,
            parameters=[_path("name")],
        )
    },
    "/admin/providers/{name}/enable": {
        "post": _operation(
            "Resume new renders on a provider.",
            _json(s.ref("ProviderRow")),
            _ADMIN,
            parameters=[_path("name")],
        )
    },
    "/admin/jobs/{job_id}": {
        "get": _operation(
            "A job as stored, with its attempts.",
            _json(s.ref("JobRecord")),
            _ADMIN,
            parameters=[_path("job_id")],
        )
    },
    "/admin/reload": {
        "post": _operation(
            "Re-read the config file.",
            _json(s.ref("Reloaded")),
            {**_ADMIN, "400": "The file has problems (`invalid_config`); nothing changed."},
        )
    },
    "/healthz": {
        "get": _operation("Liveness.", _json(s.ref("Health")), {}, public=True),
    },
    "/readyz": {
        "get": {
            **_operation("Readiness.", _json(s.ref("Readiness")), {}, public=True),
        }
    },
    "/metrics": {
        "get": _operation(
            "Prometheus text exposition.",
            {"description": "OK", "content": {"text/plain": {"schema": s.STRING}}},
            {},
            public=True,
        )
    },
    "/openapi.json": {
        "get": _operation(
            "This document.",
            _json({"type": "object"}),
            {},
            public=True,
        )
    },
}
PATHS["/readyz"]["get"]["responses"]["503"] = _json(s.ref("Readiness"), "Not ready yet.")

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "sora-api-proxy",
        "version": "1",
        "description": (
            "The OpenAI Videos API (with edits, extensions and characters), "
            "the relay task dialect, and the admin API, served by sora-api-proxy. Every error "
            "is the OpenAI envelope. `POST /v1/videos/{video_id}/cancel` is an extension."
        ),
    },
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": s.SCHEMAS,
    },
}


async def openapi(request: web.Request) -> web.Response:
    return json_response(DOCUMENT)


ROUTES = (web.get("/openapi.json", openapi),)
