"""The admin view: provider health and a job's attempts, for operators only.

Gated by ``server.admin_key``, never by a client key: with no admin key configured the admin
API does not exist (404); a missing or wrong key is a 401; a valid client key is a 403, so a
client learns nothing about other clients' jobs or the fleet. The auth middleware leaves
``ADMIN_PREFIX`` to this module. Errors render in the OpenAI envelope like every other route.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from router import keys
from router.errors import Forbidden, NotFound, Unauthenticated
from router.jsonio import json_response

ADMIN_PREFIX = "/admin/"


def add_routes(app: web.Application) -> None:
    app.router.add_get(ADMIN_PREFIX + "providers", providers)
    app.router.add_get(ADMIN_PREFIX + "jobs/{job_id}", job)


def _check_admin(request: web.Request) -> None:
    admin_key = request.app[keys.CONFIG].server.admin_key
    if not admin_key:
        raise NotFound("The admin API is not enabled.")
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token and hmac.compare_digest(token.encode(), admin_key.encode()):
        return
    if not token:
        raise Unauthenticated("The admin API needs the admin key as a Bearer token.")
    request.app[keys.KEYRING].authenticate(header)  # raises 401 for an unknown key
    raise Forbidden("A client key cannot use the admin API.")


async def providers(request: web.Request) -> web.Response:
    """Each provider's state, EWMAs, success rate, ejections and in-flight jobs; and panic."""
    _check_admin(request)
    app = request.app
    health, selector = app[keys.HEALTH], app[keys.SELECTOR]
    in_flight: dict[str, int] = {}
    for unfinished in app[keys.STORE].unfinished():
        name = unfinished.current.provider
        in_flight[name] = in_flight.get(name, 0) + 1
    rows: list[dict[str, Any]] = []
    for entry in app[keys.POOL]:
        name = entry.name
        stats, outliers = health.stats(name), health.outliers.view(name)
        state = "ejected" if health.ejected(name) else "cooling" if health.cooling(name) else "up"
        rows.append(
            {
                "name": name,
                "kind": entry.config.kind,
                "state": state,
                "ejections": outliers.ejections,
                "ejected_until": outliers.ejected_until,
                "submit_latency_ewma": stats.submit_latency,
                "render_time_ewma": stats.render_time,
                "success_rate": round(stats.success_rate, 4),
                "failure_rate": round(outliers.failure_rate, 4),
                "in_flight": in_flight.get(name, 0),
            }
        )
    return json_response({"panic": selector.panicking(), "providers": rows})


async def job(request: web.Request) -> web.Response:
    """A job with every attempt (provider, upstream id, state, error), whoever owns it."""
    _check_admin(request)
    found = request.app[keys.STORE].get(request.match_info["job_id"])
    if found is None:
        raise NotFound("No job with that id.", param="job_id")
    return json_response(found.to_record())
