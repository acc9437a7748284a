"""The admin API: provider health, a job's attempts, drain and re-enable, config reload.

Gated by ``server.admin_key``, never by a client key: with no admin key configured the admin
API does not exist (404); a missing or wrong key is a 401; a valid client key is a 403, so a
client learns nothing about other clients' jobs or the fleet. The client-key check in front
of every route (``router.app.fronted``) leaves ``ADMIN_PREFIX`` to this module. Errors render
in the OpenAI envelope like every other route.

In a fleet (the redis backend) a drain is answered once it is on the shared health board, and
a reload made through one instance is announced on the bus so every instance reloads its file
(``router.runtime.fleet``).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from router import appkeys as keys
from router.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from router.jsonio import json_response
from router.routing.pool import PoolEntry
from router.runtime.fleet import broadcast_reload, flush_health
from router.runtime.reload import reload_config

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/admin/"


def _check_admin(request: web.Request) -> None:
    admin_key = request.app[keys.CONFIG].current.server.admin_key
    if not admin_key:
        raise NotFound("The admin API is not enabled.")
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if token and hmac.compare_digest(token.encode("utf-8", "surrogateescape"), admin_key.encode()):
        return
    if not token:
        raise Unauthenticated("The admin API needs the admin key as a Bearer token.")
    request.app[keys.KEYRING].authenticate(header)  # raises 401 for an unknown key
    raise Forbidden("A client key cannot use the admin API.")


async def providers(request: web.Request) -> web.Response:
    """Each provider's state, EWMAs, success rate, ejections and in-flight jobs; and panic."""
    _check_admin(request)
    app = request.app
    rows = [_row(app, entry) for entry in app[keys.POOL]]
    return json_response({"panic": app[keys.SELECTOR].panicking(), "providers": rows})


async def drain(request: web.Request) -> web.Response:
    """No new renders for this provider; its jobs in flight carry on. In a fleet the answer
    comes once the drain is on the shared board, so every instance has it."""
    return await _set_drained(request, True)


async def enable(request: web.Request) -> web.Response:
    """Undo a drain."""
    return await _set_drained(request, False)


async def reload(request: web.Request) -> web.Response:
    """Re-read the config file; a file with problems changes nothing and is a 400 listing them."""
    _check_admin(request)
    result = await reload_config(request.app)
    if result.applied:
        await broadcast_reload(request.app)  # every other instance of a fleet reloads too
    if not result.applied:
        raise InvalidRequest(
            "The config was not reloaded; nothing changed. " + "; ".join(result.problems),
            code="invalid_config",
        )
    return json_response({"reloaded": True, "restart_required": list(result.restart_required)})


async def _set_drained(request: web.Request, drained: bool) -> web.Response:
    _check_admin(request)
    app, name = request.app, request.match_info["name"]
    entry = next((e for e in app[keys.POOL] if e.name == name), None)
    if entry is None:
        raise NotFound(f"No configured provider named '{name}'.", param="name")
    app[keys.SELECTOR].drain(name, drained)
    await flush_health(app)
    log.info("provider %s %s by the admin API", name, "drained" if drained else "re-enabled")
    return json_response(_row(app, entry))


def _row(app: web.Application, entry: PoolEntry) -> dict[str, Any]:
    """One provider as the admin sees it; ``in_flight`` is the count the limits keep (the
    ``jobs_in_flight`` gauge shows the same), not a scan of every unfinished job."""
    health, name = app[keys.HEALTH], entry.name
    stats, outliers = health.stats(name), health.outliers.view(name)
    if app[keys.SELECTOR].drained(name):
        state = "drained"
    else:
        state = "ejected" if health.ejected(name) else "cooling" if health.cooling(name) else "up"
    return {
        "name": name,
        "kind": entry.config.kind,
        "state": state,
        "ejections": outliers.ejections,
        "ejected_until": outliers.ejected_until,
        "submit_latency_ewma": stats.submit_latency,
        "render_time_ewma": stats.render_time,
        # Two windows, each named with its counts so the figures read together: the last
        # render outcomes (what routing's success rate is built from, without its prior), and
        # what outlier detection judges (submits and renders since the last readmission).
        "renders": _share(list(stats.renders), "succeeded", "success_rate", True),
        "outlier_window": _share(list(outliers.outcomes), "failed", "failure_rate", False),
        "in_flight": app[keys.LIMITS].rendering(name),
    }


def _share(outcomes: list[bool], name: str, rate: str, counted: bool) -> dict[str, Any]:
    """``{"counted": n, name: k, rate: k / n}`` for the outcomes equal to ``counted``; the
    rate is None before the first outcome."""
    hits = outcomes.count(counted)
    share = round(hits / len(outcomes), 4) if outcomes else None
    return {"counted": len(outcomes), name: hits, rate: share}


async def job(request: web.Request) -> web.Response:
    """A job with every attempt (provider, upstream id, state, error), whoever owns it."""
    _check_admin(request)
    found = await request.app[keys.STORE].read(request.match_info["job_id"])
    if found is None:
        raise NotFound("No job with that id.", param="job_id")
    return json_response(found.to_record())


ROUTES = (
    web.get(ADMIN_PREFIX + "providers", providers),
    web.post(ADMIN_PREFIX + "providers/{name}/drain", drain),
    web.post(ADMIN_PREFIX + "providers/{name}/enable", enable),
    web.get(ADMIN_PREFIX + "jobs/{job_id}", job),
    web.post(ADMIN_PREFIX + "reload", reload),
)
