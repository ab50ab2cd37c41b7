"""A tarpit: answers to submissions we refuse or flag are held for a moment.

A flooding client sends its next request the moment it gets an answer, so however cheap a
429 is, a few keep-alive connections keep a core busy and real visitors wait behind them.
Holding those answers for ``LEADS_TARPIT_SECONDS`` caps such a client at one request per
connection per interval, for the price of a sleeping task, and lets the flagged submissions
of the same interval be written together in one transaction. A real visitor is held only
when they were rate-limited or misjudged as a bot; their submission is kept all the same.

    tarpit = Tarpit(seconds=1.0, capacity=1000)
    if not await tarpit.hold():  # waits until the next tick; False at once when full
        ...                         # answer now, and close the connection

Everyone held in one interval is released together, at the same tick: the first waits the
whole interval, later arrivals less. When ``capacity`` answers are already held (a flood
with more connections than that) ``hold`` returns False at once and the caller answers
without waiting, closing the connection; such floods belong to the reverse proxy's
per-address limits (docs/operations.md).
"""

from __future__ import annotations

import asyncio


class Tarpit:
    def __init__(self, *, seconds: float, capacity: int):
        self.seconds = seconds
        self.capacity = capacity
        self.held = 0
        self._tick: asyncio.Future[None] | None = None

    async def hold(self) -> bool:
        """Wait until the next tick (at once when the tarpit is off). False, without
        waiting, when it is full."""
        if self.seconds <= 0:
            return True
        if self.held >= self.capacity:
            return False
        if self._tick is None:
            loop = asyncio.get_running_loop()
            self._tick = loop.create_future()
            loop.call_later(self.seconds, self._release, self._tick)
        self.held += 1
        try:
            # Shielded: a visitor who disconnects must not cancel the tick for the others.
            await asyncio.shield(self._tick)
        finally:
            self.held -= 1
        return True

    def _release(self, tick: asyncio.Future[None]) -> None:
        if self._tick is tick:
            self._tick = None
        if not tick.done():
            tick.set_result(None)
