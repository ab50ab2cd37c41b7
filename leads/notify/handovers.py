"""The outbox's hand-over marks, written for a text channel in short transactions of their
own (see :mod:`leads.storage.handovers` and docs/reliability.md).

Each write commits before the channel goes on: the mark before the request leaves, so an
attempt cut off mid-request (a timeout, a crash) leaves a row that says "handed over,
answer unknown", and the retry does not send blindly. A mark that cannot be written stops
the attempt before anything is sent; a provider id or a cleared mark that cannot be
written is only logged: the text went (or did not), and the cautious reading on the next
attempt is the safe one.
"""

from __future__ import annotations

import logging

from leads.errors import StorageUnavailable, TransientDeliveryError
from leads.notify.channels.base import Clock
from leads.storage import handovers
from leads.storage.database import Database
from leads.storage.models import OutboxMessage

log = logging.getLogger("leads.notify")


class DatabaseHandOvers:
    def __init__(self, database: Database, *, worker: str, clock: Clock):
        self.database = database
        self.worker = worker
        self.clock = clock

    async def handing_over(self, message: OutboxMessage) -> bool:
        now = self.clock()
        try:
            async with self.database.writing() as session:
                marked = await handovers.hand_over(
                    session=session,
                    message_id=message.id,
                    worker=self.worker,
                    now=now,
                    seen=message.handed_over_at,
                )
        except StorageUnavailable as exc:
            raise TransientDeliveryError("database unavailable; nothing sent") from exc
        if marked:
            message.handed_over_at = now  # what the next mark compares against
        return marked

    async def not_sent(self, message: OutboxMessage) -> None:
        try:
            async with self.database.writing() as session:
                await handovers.take_back(
                    session=session, message_id=message.id, seen=message.handed_over_at
                )
        except StorageUnavailable:
            log.warning("notification %s: hand-over mark kept (database unavailable)", message.id)
            return
        message.handed_over_at = None

    async def accepted(self, message: OutboxMessage, provider_id: str) -> None:
        try:
            async with self.database.writing() as session:
                await handovers.record_accepted(
                    session=session, message_id=message.id, provider_id=provider_id
                )
        except StorageUnavailable:
            log.warning(
                "notification %s: provider id not recorded (database unavailable)", message.id
            )
