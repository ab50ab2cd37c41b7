"""A tarpit: answers to submissions we refuse or flag are held for a moment.

A flooding client sends its next request the moment it gets an answer, so however cheap a
429 is, a few keep-alive connections keep a core busy and real visitors wait behind them.
Holding those answers for ``LEADS_TARPIT_SECONDS`` or a little more caps such a client at
one request per connection per interval, for the price of a sleeping task, and lets the
flagged submissions released at the same tick be written together in one transaction. A
real visitor is held only when they were rate-limited or misjudged as a bot; their
submission is kept all the same.

    tarpit = Tarpit(seconds=1.0, capacity=1000, clock=SYSTEM_CLOCK)
    if not await tarpit.hold():  # waits 1-2 seconds; False at once when full
        ...                         # answer now, and close the connection

Each answer waits between one and two times ``seconds`` (drawn at random), until the next
of the ticks that come every ``seconds / SLICES`` on the clock: the answers held are
released in groups, a tenth of an interval apart, one sleeping task per tick. The random
part keeps a flood's connections spread over the ticks: a flood opens its connections all
at once, and with a fixed wait they would stay in step, one burst of hundreds of answers
(and of spam to write) per interval, which real visitors would wait behind. When
``capacity`` answers are already held (a flood with more connections than that) ``hold``
returns False at once: the caller answers a 429 without waiting, closing the connection,
and stores a flagged submission without waiting. Such floods belong to the reverse proxy's
per-address limits (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import math
import random

from leads.abuse.clock import Clock

SLICES = 10


class Tarpit:
    def __init__(self, *, seconds: float, capacity: int, clock: Clock) -> None:
        self.seconds = seconds
        self.capacity = capacity
        self.held = 0
        self._clock = clock
        self._ticks: dict[int, asyncio.Task[None]] = {}  # tick number -> its release
        self._random = random.Random()  # spreads connections over ticks; not a secret

    async def hold(self) -> bool:
        """Wait until the first tick at least ``seconds x (1 + a random fraction)`` away (at
        once when the tarpit is off). False, without waiting, when it is full."""
        if self.seconds <= 0:
            return True
        if self.held >= self.capacity:
            return False
        now = self._clock.now()
        step = self.seconds / SLICES
        number = math.ceil((now + self.seconds * (1 + self._random.random())) / step)
        tick = self._ticks.get(number)
        if tick is None:
            tick = self._ticks[number] = asyncio.create_task(
                self._clock.sleep(number * step - now), name=f"tarpit tick {number}"
            )
            tick.add_done_callback(lambda _: self._ticks.pop(number, None))
        self.held += 1
        try:
            # Shielded: a visitor who disconnects must not cancel the tick for the others.
            await asyncio.shield(tick)
        finally:
            self.held -= 1
        return True
