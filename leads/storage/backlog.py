"""The outbox at a glance, for the metrics: how much waits, for how long, how much is dead.

One query, grouped by status over the ``(status, next_attempt_at)`` index, so it reads only
pending and dead rows, however many delivered ones have built up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import OutboxStatus
from leads.storage.models import OutboxMessage


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    dead: int
    oldest_pending_seconds: float  # since it was queued (or retried by an operator); 0 if none


async def outbox_backlog(*, session: AsyncSession, now: datetime) -> Backlog:
    statuses = (OutboxStatus.PENDING.value, OutboxStatus.DEAD.value)
    rows = await session.execute(
        select(col(OutboxMessage.status), func.count(), func.min(col(OutboxMessage.scheduled_from)))
        .where(col(OutboxMessage.status).in_(statuses))
        .group_by(OutboxMessage.status)
    )
    counts: dict[str, int] = {}
    oldest: datetime | None = None
    for status, count, earliest in rows.all():
        counts[status] = count
        if status == OutboxStatus.PENDING:
            oldest = earliest
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return Backlog(
        pending=counts.get(OutboxStatus.PENDING, 0),
        dead=counts.get(OutboxStatus.DEAD, 0),
        oldest_pending_seconds=age,
    )
