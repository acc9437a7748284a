"""The webhook outbox: one event per job, type and URL; leased claims; retries and endings."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.store.outbox import OutboxEvent, SqliteWebhookOutbox


def event(n: int, url: str = "https://hooks.example.com/a") -> OutboxEvent:
    return OutboxEvent(f"evt_{n}", "video_1", "video.completed", url, "alice", b"{}", 100.0)


async def test_events_are_unique_claimed_once_and_survive_a_reopen(tmp_path: Path) -> None:
    outbox = SqliteWebhookOutbox(tmp_path / "jobs.db")
    await outbox.open()
    assert await outbox.add(event(1))
    assert not await outbox.add(event(2))  # the same job, type and URL: already there
    assert await outbox.add(event(3, url="https://hooks.example.com/b"))
    claimed = await outbox.claim(now=100.0, lease=15.0, limit=10)
    assert [e.id for e in claimed] == ["evt_1", "evt_3"]
    assert await outbox.claim(now=101.0, lease=15.0, limit=10) == []  # leased
    await outbox.failed("evt_1", due_at=120.0, error="HTTP 500")
    await outbox.delivered("evt_3", now=102.0)
    assert await outbox.pending() == (1, 100.0)
    await outbox.close()

    again = SqliteWebhookOutbox(tmp_path / "jobs.db")
    await again.open()
    try:
        (retry,) = await again.claim(now=121.0, lease=15.0, limit=10)
        assert (retry.id, retry.attempts) == ("evt_1", 1)
        await again.gave_up("evt_1", now=130.0, error="HTTP 500")
        assert await again.pending() == (0, None)
    finally:
        await again.close()
    with pytest.raises(RuntimeError, match="not open"):
        await again.pending()
