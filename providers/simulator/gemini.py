"""The simulated upstream's Gemini API for Veo, mounted at ``/gemini/v1beta``::

    POST /models/{model}:predictLongRunning      create; answers the operation name
    GET  /models/{model}/operations/{id}         the operation
    GET  /files/{id}:download?alt=media          302 to the credential-free MP4 link
    GET  /models                                 the model list (the probe)

Every call needs ``x-goog-api-key`` (or ``?key=``): a wrong key is Google's 400
``API_KEY_INVALID``, a missing one 403. An operation is ``done: false`` until the render ends;
then it has a sample's ``video.uri``, or an ``error`` (a failed render), or, for output
moderation, no sample and ``raiMediaFilteredCount: 1`` with the reason. Errors are Google's
``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from aiohttp import web

from providers.simulator.http import ApiError, invalid, json_response, read_prompt
from providers.simulator.jobs import CreateParams, Fault, SimulatedJob, VideoStatus
from providers.simulator.tasks import TaskDialect, size_of, whole_seconds

PREFIX = "/gemini/v1beta"
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


class GeminiApi(TaskDialect):
    def routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/models/{model}:predictLongRunning", self.predict)
        router.add_get("/models/{model}/operations/{operation}", self.operation)
        router.add_get("/files/{file}:download", self.download)
        router.add_get("/models", self.models)

    def check_key(self, request: web.Request) -> None:
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if given is None:
            raise ApiError(403, "Method doesn't allow unregistered callers.")
        if not self.key_matches(given):
            raise ApiError(400, "API key not valid. Please pass a valid API key.", code="key")

    def error_response(self, error: ApiError) -> web.Response:
        body: dict[str, object] = {
            "code": error.status,
            "message": error.message,
            "status": _STATUS_NAMES.get(error.status, "UNKNOWN"),
        }
        if error.code == "key":
            body["details"] = [{"reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
        return json_response({"error": body}, status=error.status, headers=error.headers)

    async def predict(self, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        params = _parse(await self.read_create(request), model)
        job = await self.create(params, secrets.token_hex(8))
        return json_response({"name": _name(job)})

    async def operation(self, request: web.Request) -> web.Response:
        job, state = self.find(request.match_info["operation"])
        if request.match_info["model"] != job.model:
            raise ApiError(404, "Operation not found.")
        body: dict[str, object] = {"name": _name(job), "done": state.status.finished}
        if state.status is VideoStatus.COMPLETED:
            uri = f"{request.url.origin()}{PREFIX}/files/{job.id}:download?alt=media"
            sample = {"video": {"uri": uri}}
            body["response"] = _response({"generatedSamples": [sample]})
        elif job.fault is Fault.OUTPUT_MODERATION and state.error is not None:
            reasons = [state.error.message]
            body["response"] = _response(
                {"raiMediaFilteredCount": 1, "raiMediaFilteredReasons": reasons}
            )
        elif state.error is not None:
            body["error"] = {"code": 13, "message": state.error.message, "status": "INTERNAL"}
        return json_response(body)

    async def download(self, request: web.Request) -> web.Response:
        self.table.stats.content_downloads += 1
        job = self.table.jobs.get(request.match_info["file"])
        if job is None or request.query.get("alt") != "media":
            raise ApiError(404, "File not found.")
        self.table.check_downloadable(job)
        raise web.HTTPFound(self.file_link(request, job))

    async def models(self, request: web.Request) -> web.Response:
        return json_response({"models": [{"name": "models/veo-3.1-generate-preview"}]})


def _name(job: SimulatedJob) -> str:
    return f"models/{job.model}/operations/{job.id}"


def _response(generated: dict[str, object]) -> dict[str, object]:
    kind = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
    return {"@type": kind, "generateVideoResponse": generated}


def _parse(fields: Mapping[str, object], model: str) -> CreateParams:
    instances = fields.get("instances")
    if (
        not isinstance(instances, list)
        or len(instances) != 1
        or not isinstance(instances[0], Mapping)
    ):
        raise invalid("instances", "Exactly one instance is required.")
    instance = instances[0]
    parameters = fields.get("parameters", {})
    if not isinstance(parameters, Mapping):
        raise invalid("parameters", "'parameters' must be an object.")
    image = instance.get("image")
    data = None
    if isinstance(image, Mapping) and isinstance(image.get("bytesBase64Encoded"), str):
        data = str(image["bytesBase64Encoded"]).encode()
    elif image is not None:
        raise invalid("image", "'image' needs bytesBase64Encoded.")
    return CreateParams(
        prompt=read_prompt(instance),
        model=model,
        size=size_of(parameters.get("resolution", "720p"), parameters.get("aspectRatio", "16:9")),
        seconds=whole_seconds(parameters.get("durationSeconds", 8), "durationSeconds", 4, 8),
        input_bytes=data,
    )
