"""Characters (``POST /v1/videos/characters``, ``GET /v1/videos/characters/{id}``), and reading
the ``characters`` a create casts.

A character is the proxy's own (``router.store.characters``): the upload is kept, the answer
is ``{id, name, created_at}`` under our ``char_`` id, and only its owner's key can read it or
cast it (another key's character is a 404, like an unknown one). No provider sees the clip
until a render casting it goes there (``router.jobs.operations``).

On a create, ``characters`` is ``[{"id": ...}]`` (at most ``MAX_CAST``) in JSON, or the form
fields ``characters[N][id]`` and ``characters[][id]`` (what the SDK sends from ``extra_body``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from providers.base import InputReference, SourceVideo
from router import appkeys as keys
from router.api.bodies import read_create_body
from router.api.requests import reject_unknown
from router.errors import InvalidRequest, NotFound
from router.jsonio import json_response
from router.store.characters import Character, new_character_id

MAX_CAST = 2  # characters in one render, as OpenAI allowed
MAX_NAME = 80
FIELDS = frozenset({"name", "video"})


def character_object(character: Character) -> dict[str, Any]:
    return {"id": character.id, "name": character.name, "created_at": int(character.created_at)}


async def create_character(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise InvalidRequest(
            "Send a character as multipart/form-data with 'name' and a 'video' file.",
            code="unsupported_content_type",
        )
    fields = await read_create_body(request)
    reject_unknown(fields, FIELDS)
    name = fields.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.strip():
        raise InvalidRequest(
            f"'name' is required: 1 to {MAX_NAME} characters.",
            param="name",
            code="invalid_value" if name else "missing_required_parameter",
        )
    video = fields.get("video")
    if not isinstance(video, InputReference) or not video.data:
        raise InvalidRequest(
            "'video' is required: upload the character's clip as a file.",
            param="video",
            code="invalid_type" if video is not None else "missing_required_parameter",
        )
    character = Character(
        id=new_character_id(),
        owner=request[keys.CLIENT_KEY].name,
        name=name,
        created_at=request.app[keys.CLOCK](),
    )
    clip = SourceVideo(data=video.data, filename=video.filename, content_type=video.content_type)
    await request.app[keys.CHARACTERS].add(character, clip)
    return json_response(character_object(character))


async def get_character(request: web.Request) -> web.Response:
    character_id = request.match_info["character_id"]
    character = await owned_character(request, character_id, "character_id")
    return json_response(character_object(character))


async def owned_character(request: web.Request, character_id: str, param: str) -> Character:
    character = await request.app[keys.CHARACTERS].get(character_id)
    if character is None or character.owner != request[keys.CLIENT_KEY].name:
        raise NotFound(f"No character found with id '{character_id}'.", param=param)
    return character


async def cast(request: web.Request, fields: Mapping[str, Any]) -> tuple[str, ...]:
    """Our ids of the characters a create casts (each the caller's), from either body form."""
    given = fields.get("characters")
    ids: list[object]
    if given is not None:
        entries = given if isinstance(given, list) else [given]
        ids = [e.get("id") if isinstance(e, dict) and set(e) == {"id"} else None for e in entries]
    else:
        ids = []
        for name, value in fields.items():
            if _form_slot(name):
                ids.extend(value if isinstance(value, list) else [value])
    if not ids:
        return ()
    if len(ids) > MAX_CAST:
        raise InvalidRequest(
            f"At most {MAX_CAST} characters can be cast in one video.",
            param="characters",
            code="too_many_characters",
        )
    if not all(isinstance(i, str) and i for i in ids):
        raise InvalidRequest(
            "Invalid 'characters': expected a list of {\"id\": ...}.",
            param="characters",
            code="invalid_type",
        )
    names = tuple(str(i) for i in ids)
    if len(set(names)) != len(names):
        raise InvalidRequest(
            "A character is cast once per video.", param="characters", code="invalid_value"
        )
    for character_id in names:
        await owned_character(request, character_id, "characters")
    return names


def form_fields(fields: Mapping[str, Any]) -> set[str]:
    """The form field names that carry characters (``characters[0][id]``, ``characters[][id]``)."""
    return {name for name in fields if _form_slot(name)}


def _form_slot(name: str) -> bool:
    if not name.startswith("characters[") or not name.endswith("][id]"):
        return False
    index = name[len("characters[") : -len("][id]")]
    return index == "" or index.isdigit()


ROUTES = (
    web.post("/v1/videos/characters", create_character),
    web.get("/v1/videos/characters/{character_id}", get_character),
)
