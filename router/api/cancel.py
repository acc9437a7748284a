"""``POST /v1/videos/{id}/cancel``: an extension of ours (OpenAI's Videos API has none).

Stops the caller's render in flight (``router.jobs.cancel``) and answers the Video object,
now ``failed`` with ``error.code`` ``cancelled``. A finished video is a 400 (``video_finished``);
another key's job is a 404, like an unknown one.
"""

from __future__ import annotations

from aiohttp import web

from router import appkeys as keys
from router.api.openai import video_body
from router.api.requests import owned_job
from router.jobs.cancel import cancel
from router.jsonio import JSON_HEADERS


async def cancel_video(request: web.Request) -> web.Response:
    job = await owned_job(request)
    app = request.app
    job = await cancel(
        job,
        selector=app[keys.SELECTOR],
        store=app[keys.STORE],
        poller=app[keys.POLLER],
        clock=app[keys.CLOCK],
    )
    return web.Response(body=video_body(job), headers=JSON_HEADERS)


ROUTES = (web.post("/v1/videos/{video_id}/cancel", cancel_video),)
