"""Delivery incidents (:class:`DeliveryIncident`): the open one, and what the outbox says.

An incident opens at the first dead letter or pending notification older than
LEADS_ALERT_AFTER_MINUTES, and closes once no dead letter is left and nothing pending is
that old (see :mod:`leads.notify.alerts`). Incidents are numbered 1, 2, 3...: whoever
opens one inserts the next number, so when several servers notice the same stall, the
primary key lets exactly one of them open it (and send its alert), on SQLite and PostgreSQL
alike, with no lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.vocabulary import OutboxStatus
from leads.storage.alert_tables import DeliveryIncident
from leads.storage.database import insert_unless_present
from leads.storage.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class Stall:
    """What is stuck in the outbox: dead letters, pending messages queued at or before
    the cutoff, the oldest of them queued at ``since``, through ``channels``."""

    dead: int
    waiting: int
    since: datetime | None
    channels: tuple[str, ...]

    @property
    def stuck(self) -> bool:
        return bool(self.dead or self.waiting)


async def read_stall(*, session: AsyncSession, cutoff: datetime) -> Stall:
    dead = col(OutboxMessage.status) == OutboxStatus.DEAD
    # A text held for quiet hours has its horizon (scheduled_from) at their end: not stuck.
    old_pending = (
        (col(OutboxMessage.status) == OutboxStatus.PENDING)
        & (col(OutboxMessage.created_at) <= cutoff)
        & (col(OutboxMessage.scheduled_from) <= cutoff)
    )
    query = (
        select(
            OutboxMessage.channel,
            func.count().filter(dead),
            func.count().filter(old_pending),
            func.min(OutboxMessage.created_at),
        )
        .where(dead | old_pending)
        .group_by(col(OutboxMessage.channel))
    )
    rows = (await session.execute(query)).all()
    starts = [row[3] for row in rows if row[3] is not None]
    return Stall(
        dead=sum(int(row[1]) for row in rows),
        waiting=sum(int(row[2]) for row in rows),
        since=min(starts) if starts else None,
        channels=tuple(sorted(str(row[0]) for row in rows)),
    )


async def latest_incident(*, session: AsyncSession) -> DeliveryIncident | None:
    """The last incident, open (no ``closed_at``) or not."""
    return await session.scalar(
        select(DeliveryIncident).order_by(col(DeliveryIncident.number).desc()).limit(1)
    )


async def claim_incident(
    *, session: AsyncSession, after: DeliveryIncident | None, stall: Stall, now: datetime
) -> DeliveryIncident | None:
    """Open the incident after ``after`` (the latest the caller saw) for ``stall``; None if
    another process opened that one first. Numbering from what the caller saw, not from a
    fresh look, is what makes two servers that both saw no open incident collide."""
    incident = DeliveryIncident(
        number=(after.number if after is not None else 0) + 1,
        opened_at=now,
        since=stall.since or now,
        dead=stall.dead,
        waiting=stall.waiting,
        channels=",".join(stall.channels)[:100],
    )
    result = await session.execute(
        insert_unless_present(session, DeliveryIncident, key=["number"]).values(
            incident.model_dump()
        )
    )
    return incident if result.rowcount else None  # type: ignore[attr-defined]


async def close_incident(*, session: AsyncSession, number: int, now: datetime) -> bool:
    """Close incident ``number``, unless it is closed already or was opened after ``now``
    (by a server whose look at the outbox was later than the caller's)."""
    result = await session.execute(
        update(DeliveryIncident)
        .where(
            col(DeliveryIncident.number) == number,
            col(DeliveryIncident.closed_at).is_(None),
            col(DeliveryIncident.opened_at) <= now,
        )
        .values(closed_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
