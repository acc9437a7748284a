"""What the asset tests share: the bytes a simulator serves, and waiting for a copy."""

from __future__ import annotations

import hashlib

from providers.simulator.media import Variant, make_asset
from providers.simulator.server import Simulator
from router.records.job import CopyState, Job
from tests.conftest import RunningProxy, read_job, wait_for


def upstream_bytes(
    sim: Simulator, upstream_id: str, variant: str, size: str = "720x1280", seconds: int = 4
) -> bytes:
    """Exactly what ``sim`` serves for ``variant`` of its job ``upstream_id`` (rendered at
    ``size`` for ``seconds``: sora-2's defaults unless said)."""
    asset = make_asset(
        upstream_id, Variant(variant), sim.settings.video_bytes, size=size, seconds=seconds
    )
    return b"".join(asset.chunks(0, asset.size))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def copied(proxy: RunningProxy, job_id: str, *, within: float = 15.0) -> Job:
    """``job_id`` once its copy has settled (stored, lost or expired)."""

    async def settled() -> bool:
        return (await read_job(proxy, job_id)).copy not in (CopyState.NONE, CopyState.PENDING)

    await wait_for(settled, within=within)
    return await read_job(proxy, job_id)
