"""A channel that keeps what it is asked to deliver, in memory: for tests, as
``httpx.MockTransport`` is for httpx's. It is never registered; a test hands it to the
dispatcher in place of a configured channel::

    channel = RecordingChannel(failures=[TransientDeliveryError("busy")])
    Dispatcher(settings, database, forms, http, channels={Channel.SMTP: channel})

Each attempt takes the next entry of ``failures``: an exception to raise (a
:class:`leads.errors.DeliveryError`, or any other to play a bug), or ``None`` to succeed;
once they run out, every attempt succeeds. With ``hold`` set, an attempt waits for that
event before it ends, so a test can stop a dispatcher while a delivery is in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable

from leads.notify.channels.base import Notice, NotificationChannel


class RecordingChannel:
    def __init__(
        self, failures: Iterable[Exception | None] = (), *, hold: asyncio.Event | None = None
    ):
        self.failures = list(failures)
        self.hold = hold
        self.attempted: list[Notice] = []  # every attempt, in order, failed or not
        self.delivered: list[Notice] = []
        self.tests: list[str | None] = []  # the targets `leads notify-test` sent to
        self._changed = asyncio.Event()

    async def deliver(self, notice: Notice) -> None:
        self.attempted.append(notice)
        self._changed.set()
        if self.hold is not None:
            await self.hold.wait()
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        self.delivered.append(notice)
        self._changed.set()

    async def send_test(self, target: str | None, test_id: uuid.UUID) -> None:
        self.tests.append(target)

    async def wait_until(self, *, attempted: int = 0, delivered: int = 0) -> None:
        """Until at least that many attempts have started and that many have succeeded;
        bound it with ``asyncio.timeout``."""
        while len(self.attempted) < attempted or len(self.delivered) < delivered:
            self._changed.clear()
            await self._changed.wait()


_IMPLEMENTS: Callable[[], NotificationChannel] = RecordingChannel  # mypy checks the protocol
