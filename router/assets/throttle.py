"""A byte-rate limit shared by every copy: a token bucket refilled on the loop's clock.

``take(n)`` returns at once while the bucket holds ``n`` bytes and otherwise sleeps until the
rate has refilled enough, so copies together never pass ``rate`` bytes a second (after a burst
of one second's worth). ``rate`` None takes nothing and never waits.
"""

from __future__ import annotations

import asyncio


class Throttle:
    def __init__(self, rate: int | None) -> None:
        self._rate = rate
        self._tokens = float(rate or 0)
        self._stamp: float | None = None
        self._lock = asyncio.Lock()  # one waiter at a time keeps the order fair

    async def take(self, count: int) -> None:
        rate = self._rate
        if rate is None:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            if self._stamp is not None:
                self._tokens = min(float(rate), self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            self._tokens -= count
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / rate)
