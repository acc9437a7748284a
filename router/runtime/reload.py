"""Config reload (``SIGHUP`` and ``POST /admin/reload``): validate all of it, then swap.

A reload re-reads the file the proxy was started from. Nothing changes unless the whole file
is valid and every change can be made live; otherwise the answer lists every reason, as
``sora-proxy check`` would.

Live: client keys and their limits, providers (added; removed ones retire and keep polling
their jobs; a changed connection gets a new adapter), prices, the model catalogue and routing.
Restart-only: the ``server``, ``store``, ``health`` and ``metrics`` sections (listening socket,
database, probe loop, metric labels); a changed value there keeps its running value and is
named under ``restart_required``. Jobs in flight keep their attempts. Reloads run one at a time.

``reload_on_sighup`` is the cleanup context ``sora-proxy serve`` adds: SIGHUP starts a reload,
whose outcome goes to the log (there is nobody to answer).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields, replace

from aiohttp import web

from router import appkeys as keys
from router.config.load import load_config
from router.config.model import Config, ConfigError
from router.jobs.retry import RetryPolicy

log = logging.getLogger(__name__)

RESTART_ONLY = ("server", "store", "health", "metrics")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    applied: bool
    problems: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()


async def reload_config(app: web.Application) -> ReloadResult:
    live = app[keys.CONFIG]
    if live.path is None:
        return ReloadResult(False, ("config: the proxy was not started from a file",))
    async with live.lock:
        try:
            new = await asyncio.to_thread(load_config, live.path)
        except ConfigError as exc:
            return _refused(exc.problems)
        pool = app[keys.POOL]
        problems = pool.reload_problems(new.providers)
        if problems:
            return _refused(problems)
        old = live.current
        restart = _restart_only_changes(old, new)
        config = replace(
            new, server=old.server, store=old.store, health=old.health, metrics=old.metrics
        )
        pool.learn_secrets(config)
        await pool.apply(config.providers)
        app[keys.HEALTH].track([entry.name for entry in pool])
        app[keys.KEYRING].replace(config.keys)
        app[keys.LIMITS].configure(config)
        app[keys.SELECTOR].configure(config)
        app[keys.DISPATCHER].configure(config.routing)
        app[keys.POLLER].configure(RetryPolicy.from_config(config.routing))
        app[keys.METRICS].set_budgets(
            {k.name: k.daily_budget_usd for k in config.keys if k.daily_budget_usd}
        )
        app[keys.METRICS].add_providers({p.name: list(p.models) for p in config.providers})
        live.current = config
    log.info(
        "config reloaded from %s: %d providers, %d keys%s",
        live.path,
        len(config.providers),
        len(config.keys),
        f"; needs a restart to change: {', '.join(restart)}" if restart else "",
    )
    return ReloadResult(True, restart_required=restart)


async def reload_on_sighup(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[ReloadResult]] = set()

    def hangup() -> None:
        task = loop.create_task(reload_config(app), name="reload")
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in list(running):
            await task


def _refused(problems: list[str]) -> ReloadResult:
    log.error("config reload refused, nothing changed:\n  %s", "\n  ".join(problems))
    return ReloadResult(False, tuple(problems))


def _restart_only_changes(old: Config, new: Config) -> tuple[str, ...]:
    return tuple(
        f"{section}.{item.name}"
        for section in RESTART_ONLY
        for item in fields(getattr(old, section))
        if getattr(getattr(old, section), item.name) != getattr(getattr(new, section), item.name)
    )
