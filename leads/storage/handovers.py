"""Outbox rows handed to a provider that takes no idempotency key (texts), and texts held
for quiet hours.

A text is sent at most once per outbox row: :func:`hand_over` marks the row, in its own
committed write, just before the request leaves, and only while the row is still the
claimant's and not marked already (or still carries the mark the claimant saw, after a
look-up found nothing). :func:`record_accepted` keeps the provider's message id. Each is
one ``UPDATE`` whose condition makes two dispatchers' attempts exclusive.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import OutboxStatus
from leads.storage.models import OutboxMessage


async def hand_over(
    *,
    session: AsyncSession,
    message_id: uuid.UUID,
    worker: str,
    now: datetime,
    seen: datetime | None,
) -> bool:
    """Mark the row handed over at ``now``; False if it is not ours any more, or another
    attempt marked it since we read ``seen`` (then nothing may be sent)."""
    mark = col(OutboxMessage.handed_over_at)
    result = await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .where(col(OutboxMessage.claimed_by) == worker)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .where(col(OutboxMessage.provider_message_id).is_(None))
        .where(mark.is_(None) if seen is None else mark == seen)
        .values(handed_over_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def take_back(*, session: AsyncSession, message_id: uuid.UUID, seen: datetime | None) -> None:
    """The provider answered that it sent nothing: the row is as if never handed over."""
    if seen is not None:
        await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == message_id)
            .where(col(OutboxMessage.handed_over_at) == seen)
            .where(col(OutboxMessage.provider_message_id).is_(None))
            .values(handed_over_at=None)
        )


async def record_accepted(
    *, session: AsyncSession, message_id: uuid.UUID, provider_id: str
) -> None:
    """The provider accepted the message as ``provider_id``: it is never sent again."""
    await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(provider_message_id=provider_id[:100])
    )


async def hold(
    *,
    session: AsyncSession,
    message_id: uuid.UUID,
    worker: str,
    until: datetime,
    now: datetime,
    scheduled_from: datetime,
) -> None:
    """Put a claimed text off until ``until`` (the end of quiet hours): the claim's attempt
    is given back, and the give-up horizon moves on by the time held, so waiting out the
    night neither counts as an attempt nor brings the dead letter nearer."""
    await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .where(col(OutboxMessage.claimed_by) == worker)
        .values(
            next_attempt_at=until,
            scheduled_from=scheduled_from + (until - now),
            attempts=OutboxMessage.attempts - 1,
            claimed_by=None,
            claimed_until=None,
        )
    )
