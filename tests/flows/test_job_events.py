"""Job events from a real render: one ``JobChanged`` per stored change, from create to delete."""

from __future__ import annotations

import asyncio

from router import appkeys as keys
from router.records.event import DELETED, JobChanged
from tests.conftest import RunningProxy


async def test_a_render_announces_each_change_once_in_order(proxy: RunningProxy) -> None:
    client = proxy.client()
    async with proxy.app[keys.EVENTS].subscribe() as subscription:
        video = await client.videos.create_and_poll(prompt="a paper boat on a pond")
        await client.videos.delete(video.id)

        heard: list[JobChanged] = []
        while not heard or heard[-1].status != DELETED:
            heard.append(await asyncio.wait_for(anext(subscription), 10))

    assert {e.id for e in heard} == {video.id}
    assert heard[0].status in ("queued", "in_progress")  # as the upstream first answered
    assert [e.status for e in heard[-2:]] == ["completed", DELETED]
    versions = [e.version for e in heard]
    assert versions == sorted(set(versions))  # strictly rising: no change announced twice
    progress = [e.progress for e in heard]
    assert progress == sorted(progress) and progress[-1] == 100
