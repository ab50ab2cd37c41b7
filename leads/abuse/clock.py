"""The clock the defences ask "how long ago" (form tokens, rate windows, the tarpit).

Code that measures time takes a :class:`Clock` rather than calling ``time.time()`` or
``asyncio.sleep()`` itself, so that tests can move time on instead of waiting for it.
``SYSTEM_CLOCK`` is the real one; ``Defences.from_settings`` passes it unless told otherwise
(``create_app(settings, clock=...)``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """Wall time, and the event loop's own sleep."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
