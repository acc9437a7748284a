"""The JSON Schemas of every body the proxy reads or answers, for ``/openapi.json``.

Components only (``router.api.openapi`` lays out the paths): each one says exactly what the
handlers build (``video_object``, ``task_object``, the admin rows, the error envelope), every
required field required and every nullable one nullable, so a client generated from the
document, and schemathesis in the test suite, can hold the proxy to it.
"""

from __future__ import annotations

from typing import Any

from providers.base import FEATURES
from router.api.characters import MAX_CAST, MAX_NAME

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NUMBER: Schema = {"type": "number"}
BOOLEAN: Schema = {"type": "boolean"}
BINARY: Schema = {"type": "string", "format": "binary"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these properties (unknown fields are refused or never sent)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def answered(properties: dict[str, Schema]) -> Schema:
    """An answer: every property present (nullable ones as null)."""
    return closed(properties, tuple(properties))


def listing(item: Schema) -> Schema:
    return answered({"object": {"const": "list"}, "data": {"type": "array", "items": item}})


_VIDEO_ID = {"type": "object", "properties": {"id": STRING}, "required": ["id"]}
_CALLBACK = {"type": "string", "format": "uri", "maxLength": 2048}
_SECONDS = {"anyOf": [{"type": "string", "pattern": "^[0-9]+$"}, {"type": "integer"}]}

SCHEMAS: dict[str, Schema] = {
    "Error": answered(
        {
            "error": answered(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": nullable(STRING),
                    "code": nullable(STRING),
                }
            )
        }
    ),
    "Video": answered(
        {
            "id": {"type": "string", "pattern": "^video_[0-9a-f]{48}$"},
            "object": {"const": "video"},
            "model": STRING,
            "status": {"enum": ["queued", "in_progress", "completed", "failed"]},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "created_at": INTEGER,
            "completed_at": nullable(INTEGER),
            "expires_at": nullable(INTEGER),
            "prompt": nullable(STRING),
            "size": STRING,
            "seconds": STRING,
            "remixed_from_video_id": nullable(STRING),
            "error": nullable(answered({"code": STRING, "message": STRING})),
        }
    ),
    "VideoList": answered(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": ref("Video")},
            "first_id": nullable(STRING),
            "last_id": nullable(STRING),
            "has_more": BOOLEAN,
        }
    ),
    "VideoDeleted": answered(
        {"id": STRING, "object": {"const": "video.deleted"}, "deleted": BOOLEAN}
    ),
    "Character": answered({"id": STRING, "name": STRING, "created_at": INTEGER}),
    "ModelList": listing(
        answered(
            {"id": STRING, "object": {"const": "model"}, "created": INTEGER, "owned_by": STRING}
        )
    ),
    "VideoModelList": listing(
        answered(
            {
                "id": STRING,
                "object": {"const": "video.model"},
                "sizes": {"type": "array", "items": STRING},
                "seconds": {"type": "array", "items": STRING},
                "default_size": STRING,
                "default_seconds": STRING,
                "features": answered(dict.fromkeys((*FEATURES, "input_reference"), BOOLEAN)),
                "providers": INTEGER,
                "price_per_second": answered(
                    {"currency": {"const": "USD"}, "min": nullable(NUMBER), "max": nullable(NUMBER)}
                ),
            }
        )
    ),
    "RelayCreated": answered({"task_id": STRING}),
    "RelayTask": answered(
        {
            "task_id": STRING,
            "platform": {"const": "sora"},
            "action": {"const": "generate"},
            "status": {"enum": ["NOT_START", "IN_PROGRESS", "SUCCESS", "FAILURE"]},
            "progress": {"type": "string", "pattern": "^[0-9]{1,3}%$"},
            "fail_reason": STRING,
            "submit_time": INTEGER,
            "start_time": nullable(INTEGER),
            "finish_time": nullable(INTEGER),
            "data": nullable(answered({"output": STRING})),
        }
    ),
    "ProviderRow": answered(
        {
            "name": STRING,
            "kind": STRING,
            "state": {"enum": ["up", "cooling", "ejected", "drained"]},
            "ejections": INTEGER,
            "ejected_until": nullable(NUMBER),
            "submit_latency_ewma": nullable(NUMBER),
            "render_time_ewma": nullable(NUMBER),
            "success_rate": NUMBER,
            "failure_rate": NUMBER,
            "in_flight": INTEGER,
        }
    ),
    "ProviderList": answered(
        {"panic": BOOLEAN, "providers": {"type": "array", "items": ref("ProviderRow")}}
    ),
    "Reloaded": answered(
        {"reloaded": {"const": True}, "restart_required": {"type": "array", "items": STRING}}
    ),
    # the stored record, attempts included: an operator's view, open to additions
    "JobRecord": {
        "type": "object",
        "required": ["id", "owner", "state", "attempts", "version"],
        "properties": {"attempts": {"type": "array", "items": {"type": "object"}}},
    },
    "Health": answered({"status": {"const": "ok"}}),
    "Readiness": closed(
        {"ready": BOOLEAN, "waiting_for": {"type": "array", "items": STRING}}, ("ready",)
    ),
}

# -- request bodies ------------------------------------------------------------------------

CREATE_FIELDS: dict[str, Schema] = {
    "prompt": {"type": "string", "minLength": 1},
    "model": STRING,
    "seconds": _SECONDS,
    "size": STRING,
}
CREATE_JSON = closed(
    {
        **CREATE_FIELDS,
        "input_reference": {
            "anyOf": [closed({"image_url": STRING}, ("image_url",)), STRING],
        },
        "characters": {"type": "array", "items": _VIDEO_ID, "maxItems": MAX_CAST},
        "callback_url": _CALLBACK,
    },
    ("prompt",),
)
CREATE_FORM = closed(
    {**CREATE_FIELDS, "input_reference": BINARY, "callback_url": _CALLBACK}, ("prompt",)
)
REMIX = closed({"prompt": {"type": "string", "minLength": 1}}, ("prompt",))
EDIT_JSON = closed({"prompt": STRING, "video": _VIDEO_ID, "model": STRING}, ("prompt", "video"))
EDIT_FORM = closed({"prompt": STRING, "video": BINARY, "model": STRING}, ("prompt", "video"))
EXTEND_JSON = closed(
    {**EDIT_JSON["properties"], "seconds": _SECONDS}, ("prompt", "video", "seconds")
)
EXTEND_FORM = closed(
    {**EDIT_FORM["properties"], "seconds": _SECONDS}, ("prompt", "video", "seconds")
)
CHARACTER_FORM = closed(
    {"name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME}, "video": BINARY},
    ("name", "video"),
)
RELAY_CREATE = closed(
    {
        "prompt": STRING,
        "model": STRING,
        "aspect_ratio": {"enum": ["16:9", "9:16"]},
        "duration": _SECONDS,
        "hd": BOOLEAN,
        "images": {"type": "array", "items": STRING, "minItems": 1, "maxItems": 1},
        "notify_hook": _CALLBACK,
        "watermark": BOOLEAN,
        "private": BOOLEAN,
    },
    ("prompt",),
)
