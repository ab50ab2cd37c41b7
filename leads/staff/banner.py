"""The warning every staff page carries when notifications are not getting through: some
are dead letters (given up on), or the oldest still on its way has waited more than
:data:`STUCK_AFTER`. Staff then know to look at the deliveries page, and to check the list
themselves rather than wait for an email."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import OutboxStatus
from leads.storage.staff_queries import OUTBOX

STUCK_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class DeliveryBanner:
    dead_letters: int
    stuck: bool  # the oldest pending message has waited longer than STUCK_AFTER

    @property
    def text(self) -> str:
        letters = "dead letter" if self.dead_letters == 1 else "dead letters"
        return f"Notifications are not getting through: {self.dead_letters} {letters}."


async def delivery_banner(*, session: AsyncSession, now: datetime) -> DeliveryBanner | None:
    """The banner to show, or None when notifications are flowing: one statement."""
    counted = select(func.count()).where(OUTBOX.status == OutboxStatus.DEAD).scalar_subquery()
    first = (
        select(OUTBOX.scheduled_from)
        .where(OUTBOX.status == OutboxStatus.PENDING)
        .order_by(OUTBOX.scheduled_from)
        .limit(1)
        .scalar_subquery()
    )
    connection = await session.connection()
    dead, oldest = (await connection.execute(select(counted, first))).one()
    stuck = oldest is not None and oldest < now - STUCK_AFTER
    if not dead and not stuck:
        return None
    return DeliveryBanner(dead_letters=int(dead or 0), stuck=stuck)
