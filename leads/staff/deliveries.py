"""What the deliveries page shows of the outbox: dead letters first (they need a person),
then the messages still on their way, then the last ones delivered. Each row names the
lead it is about by id and first name only; an error is the channel's last error with any
email address in it masked, since an autoreply's error can quote the visitor's address."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.vocabulary import OutboxStatus
from leads.settings.display import shown_target
from leads.storage.models import Lead, OutboxMessage

DEAD_SHOWN = 100
PENDING_SHOWN = 100
DELIVERED_SHOWN = 20
_EMAIL = re.compile(r"[^\s<>\"'(),;:]+@[^\s<>\"'(),;:]+")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: uuid.UUID
    lead_id: uuid.UUID | None
    first_name: str | None
    kind: str  # a MessageKind
    channel: str  # a Channel
    target: str | None  # a webhook's URL, its secrets redacted; a text's number, masked
    status: str  # an OutboxStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Deliveries:
    dead: list[Delivery]
    pending: list[Delivery]
    delivered: list[Delivery]


def masked_error(text: str | None) -> str | None:
    """The error without email addresses (a server's "550 <ann@example.com> unknown")."""
    return _EMAIL.sub("[address]", text) if text else None


def _first_name(name: str | None) -> str | None:
    words = name.split() if name else []
    return words[0] if words else None


async def _messages(
    session: AsyncSession, status: OutboxStatus, order: object, limit: int
) -> list[Delivery]:
    query = (
        select(OutboxMessage, Lead.name)
        .outerjoin(Lead, col(Lead.id) == col(OutboxMessage.lead_id))
        .where(col(OutboxMessage.status) == status)
        .order_by(order)  # type: ignore[arg-type]
        .limit(limit)
    )
    return [
        Delivery(
            id=m.id,
            lead_id=m.lead_id,
            first_name=_first_name(name),
            kind=m.kind,
            channel=m.channel,
            target=shown_target(m.channel, m.target) if m.target else None,
            status=m.status,
            attempts=m.attempts,
            created_at=m.created_at,
            next_attempt_at=m.next_attempt_at,
            delivered_at=m.delivered_at,
            error=masked_error(m.last_error),
        )
        for m, name in (await session.execute(query)).all()
    ]


async def deliveries_overview(*, session: AsyncSession) -> Deliveries:
    """Dead letters newest first, pending ones oldest first, the last delivered newest first."""
    return Deliveries(
        dead=await _messages(
            session, OutboxStatus.DEAD, col(OutboxMessage.created_at).desc(), DEAD_SHOWN
        ),
        pending=await _messages(
            session, OutboxStatus.PENDING, col(OutboxMessage.created_at), PENDING_SHOWN
        ),
        delivered=await _messages(
            session,
            OutboxStatus.DELIVERED,
            col(OutboxMessage.delivered_at).desc(),
            DELIVERED_SHOWN,
        ),
    )
