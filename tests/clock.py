"""A clock that tests move by hand (leads.abuse.clock.Clock), and waiting for a condition."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

START = 1_750_000_000.0  # a fixed "now": 2025-06-15


class FakeClock:
    """Stands still until :meth:`advance`; a ``sleep`` returns once the clock has been
    moved past its end, and never sooner."""

    def __init__(self, start: float = START) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, wake))
        try:
            await wake
        finally:
            self._sleepers = [(at, f) for at, f in self._sleepers if f is not wake]

    def advance(self, seconds: float) -> None:
        """Move on; every sleep that ends by then is woken (its task runs at the loop's
        next turn)."""
        self._now += seconds
        for at, wake in self._sleepers:
            if at <= self._now and not wake.done():
                wake.set_result(None)

    @property
    def wakes(self) -> list[float]:
        """When the sleeps still waiting end, soonest first."""
        return sorted(at for at, wake in self._sleepers if not wake.done())


async def until(condition: Callable[[], bool], *, within: float = 10.0) -> None:
    """Return as soon as ``condition()`` holds; fail after ``within`` real seconds. Tasks
    started by then have taken their first step (so a sleep they begin is registered)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.001)
    await asyncio.sleep(0)  # after the steps already queued, such as new tasks' first
