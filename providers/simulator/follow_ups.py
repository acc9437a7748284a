"""The simulated upstream's edits, extensions and characters (OpenAI's final surface, 2026-03).

Owns the handlers of ``POST /videos/edits``, ``POST /videos/extensions``,
``POST /videos/characters`` and ``GET /videos/characters/{id}`` for the OpenAI and Azure
dialects. ``video`` is ``{"id"}`` of a completed job of this upstream (JSON, or the form field
``video[id]``) or an uploaded MP4, whose length and frame size are read from its boxes
(``providers.mp4``). An extension's segment is 4 to 20 seconds, a chain holds at most
``MAX_EXTENSIONS`` of them and ``MAX_TOTAL_SECONDS`` in all; its ``seconds`` is the stitched
total. Errors are ``ApiError``s, rendered by the dialect's gate.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from aiohttp import web

from providers.mp4 import probe
from providers.simulator.http import (
    MISSING_PARAMETER,
    ApiError,
    invalid,
    json_response,
    read_fields,
    read_prompt,
    unix_seconds,
)
from providers.simulator.jobs import CreateParams, JobTable, SimulatedJob, VideoStatus
from providers.simulator.openai import VideosApi

MAX_EXTENSIONS = 6  # extensions in one chain
MAX_TOTAL_SECONDS = 120  # a stitched video's length at most
_SEGMENTS = range(4, 21)  # seconds of one extension segment
_NAME_CHARS = range(1, 81)


class FollowUpApi:
    """Edits, extensions and characters over the shared ``JobTable``."""

    def __init__(self, table: JobTable, videos: VideosApi) -> None:
        self._table = table
        self._videos = videos
        self._extensions: dict[str, int] = {}  # job id -> extensions in its chain

    async def edit(self, request: web.Request) -> web.Response:
        self._table.stats.edits += 1
        fields, form = await read_fields(request)
        prompt = read_prompt(fields)
        model, size, seconds, source = self._source(fields, form)
        job = self._table.start(
            CreateParams(prompt, model, size, str(seconds)), job_id=_new_video_id()
        )
        if source is not None:
            self._extensions[job.id] = self._extensions.get(source.id, 0)
        return json_response(self._videos.video_object(job, self._table.now()))

    async def extend(self, request: web.Request) -> web.Response:
        self._table.stats.extensions += 1
        fields, form = await read_fields(request)
        prompt = read_prompt(fields)
        model, size, seconds, source = self._source(fields, form)
        segment = _segment(fields.get("seconds"))
        done = self._extensions.get(source.id, 0) if source is not None else 0
        if done >= MAX_EXTENSIONS:
            raise invalid("video", f"A video can be extended at most {MAX_EXTENSIONS} times.")
        if seconds + segment > MAX_TOTAL_SECONDS:
            raise invalid("seconds", f"An extended video is at most {MAX_TOTAL_SECONDS} seconds.")
        params = CreateParams(prompt, model, size, str(seconds + segment))
        job = self._table.start(params, job_id=_new_video_id())
        self._extensions[job.id] = done + 1
        return json_response(self._videos.video_object(job, self._table.now()))

    async def create_character(self, request: web.Request) -> web.Response:
        fields, form = await read_fields(request)
        name = fields.get("name")
        if not isinstance(name, str) or len(name) not in _NAME_CHARS:
            raise invalid("name", "Invalid 'name': expected 1 to 80 characters.")
        clip = fields.get("video")
        if not form or not isinstance(clip, web.FileField):
            raise invalid("video", "Invalid type for 'video': expected a file.", "invalid_type")
        character = self._table.add_character(
            name, clip.file.read(), character_id="char_" + secrets.token_hex(12)
        )
        return json_response(
            {"id": character.id, "name": character.name, "created_at": int(character.created_at)}
        )

    async def get_character(self, request: web.Request) -> web.Response:
        character_id = request.match_info["character_id"]
        character = self._table.characters.get(character_id)
        if character is None:
            raise ApiError(404, f"Character '{character_id}' not found.", param="character_id")
        created = unix_seconds(character.created_at)
        return json_response({"id": character.id, "name": character.name, "created_at": created})

    def _source(
        self, fields: Mapping[str, object], form: bool
    ) -> tuple[str, str, int, SimulatedJob | None]:
        """(model, size, seconds) of the source video, and its job when it is one of ours."""
        video = fields.get("video")
        source_id = fields.get("video[id]") if form else None
        if isinstance(video, dict):
            source_id = video.get("id")
        if isinstance(source_id, str):
            job = self._table.jobs.get(source_id)
            if job is None:
                raise ApiError(404, f"Video with id '{source_id}' not found.", param="video")
            if self._table.state(job).status is not VideoStatus.COMPLETED:
                raise invalid("video", f"Video '{source_id}' is not completed.")
            return job.model, job.size, int(job.seconds), job
        if form and isinstance(video, web.FileField):
            info = probe(video.file.read())
            if info is None:
                raise invalid("video", "The uploaded video is not an MP4 we can read.")
            model = fields.get("model", "sora-2")
            return str(model), info.size, info.seconds, None
        if video is None and source_id is None:
            raise invalid("video", "Missing required parameter: 'video'.", MISSING_PARAMETER)
        raise invalid("video", "Invalid 'video': expected a file or {\"id\": ...}.", "invalid_type")


def _segment(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value not in _SEGMENTS:
        raise invalid("seconds", "Invalid 'seconds': an extension is 4 to 20 seconds.")
    return value


def _new_video_id() -> str:
    return "video_" + secrets.token_hex(24)
