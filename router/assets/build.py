"""The asset store, copier and retention an app runs, built from ``assets:`` in config.

``local_root`` is where the local backend keeps its files: ``assets.path``, or beside the
job store (``<store dir>/assets``), so a demo's videos live next to its jobs.
``copy_leases`` says who may copy a job: the fleet's leases in Redis when there is one, else a
table in this process (one instance always gets the lease). ``copies_to_resume`` finds, at
start, the completed jobs whose copy a previous run left unfinished, walking each client key's
jobs back only as far as a copy can still succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from router.assets.base import AssetStore
from router.assets.local import LocalAssetStore
from router.config.model import Config
from router.fleet.leases import Leases, LocalLeases
from router.fleet.redis_leases import RedisLeases
from router.records.job import Job
from router.store.base import JobStore, owned_since
from router.store.redis_client import RedisClient


def local_root(config: Config) -> Path:
    if config.assets.path:
        return Path(config.assets.path)
    store = config.store.path
    return Path("data" if store == ":memory:" else Path(store).parent) / "assets"


def asset_store(config: Config) -> AssetStore:
    """The backend ``assets.backend`` names."""
    if config.assets.backend == "s3":
        from router.assets.s3 import S3AssetStore  # botocore loads only when it is used

        return S3AssetStore(config.assets)
    return LocalAssetStore(local_root(config))


def copy_leases(
    redis: RedisClient | None, instance: str | None, clock: Callable[[], float]
) -> Leases:
    """Copy leases shared through ``redis`` (the fleet's) under this ``instance``'s name."""
    if redis is None or instance is None:
        return LocalLeases({}, "this-process", clock)
    return RedisLeases(redis, instance, clock)


async def copies_to_resume(jobs: JobStore, config: Config, now: float) -> list[Job]:
    """Completed jobs whose copy is not whole yet, newest first per key.

    A copy is retried for at most the upstream's link lifetime, so jobs created more than
    ``copy_window`` plus ``job_deadline`` ago (or a day, if longer) are not looked at.
    """
    horizon = max(config.assets.copy_window, 86400.0) + config.routing.job_deadline
    oldest = now - horizon
    return [
        job
        for key in config.keys
        async for job in owned_since(jobs, key.name, oldest)
        if job.copy_needed()
    ]
