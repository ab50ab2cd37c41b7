"""What a turn's finished attempts mean for their outbox rows, and writing them together.

An attempt's outcome is plain data (:data:`Outcome`): delivered, a retry at a time, a dead
letter (switching a 410 webhook off), or a text held for quiet hours. A dispatcher keeps a
turn's outcomes and :func:`record_outcomes` writes them in its next transaction: one Core
executemany ``UPDATE`` per kind, however many there are, each row only while its claim is
still the recorder's (a lease that ran out and was taken over keeps its new claim).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import OutboxStatus
from leads.storage import handovers
from leads.storage.outbox import OUTBOX, disable_webhook


@dataclass(frozen=True, slots=True)
class Delivered:
    """The message went out."""

    message_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at ``at`` (:mod:`leads.notify.retry`)."""

    message_id: uuid.UUID
    at: datetime
    error: str


@dataclass(frozen=True, slots=True)
class Dead:
    """A dead letter; ``gone``: the webhook URL that answered 410, switched off with it."""

    message_id: uuid.UUID
    error: str
    gone: str | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """A text put off until quiet hours end (:func:`leads.storage.handovers.hold`)."""

    message_id: uuid.UUID
    until: datetime
    scheduled_from: datetime


Outcome = Delivered | Retry | Dead | Held


def _finishing(**values: Any) -> Update:
    """One UPDATE for many finished rows (an executemany): each row by its id, only while
    the claim is still the recorder's (``worker``)."""
    return (
        update(OUTBOX)
        .where(OUTBOX.c.id == bindparam("message_id"), OUTBOX.c.claimed_by == bindparam("worker"))
        .values(claimed_by=None, claimed_until=None, **values)
    )


DELIVER = _finishing(status=OutboxStatus.DELIVERED, delivered_at=bindparam("now"))
RETRY = _finishing(next_attempt_at=bindparam("at"), last_error=bindparam("error"))
BURY = _finishing(status=OutboxStatus.DEAD, last_error=bindparam("error"))


async def record_outcomes(
    *, session: AsyncSession, worker: str, now: datetime, outcomes: Sequence[Outcome]
) -> None:
    """Write a batch of attempts' outcomes: one executemany per kind of outcome, in Core
    (no ORM objects, no session synchronisation: nothing the session holds is changed)."""
    delivered = [
        {"message_id": o.message_id, "worker": worker, "now": now}
        for o in outcomes
        if isinstance(o, Delivered)
    ]
    retried = [
        {"message_id": o.message_id, "worker": worker, "at": o.at, "error": o.error[:500]}
        for o in outcomes
        if isinstance(o, Retry)
    ]
    dead = [
        {"message_id": o.message_id, "worker": worker, "error": o.error[:500]}
        for o in outcomes
        if isinstance(o, Dead)
    ]
    for statement, rows in ((DELIVER, delivered), (RETRY, retried), (BURY, dead)):
        if rows:
            await session.execute(statement, rows)
    for outcome in outcomes:
        if isinstance(outcome, Dead) and outcome.gone:
            await disable_webhook(session=session, url=outcome.gone, reason=outcome.error, now=now)
        elif isinstance(outcome, Held):
            await handovers.hold(
                session=session,
                message_id=outcome.message_id,
                worker=worker,
                until=outcome.until,
                now=now,
                scheduled_from=outcome.scheduled_from,
            )
