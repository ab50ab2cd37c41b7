"""Retrying dead letters from the staff side: the operator's retry
(:func:`leads.notify.operator.retry_outbox`, what ``leads outbox retry`` does), with who
asked written down. Each message retried gets an audit entry ``message_retried`` and, when
it is about a lead, a ``resent`` entry in that lead's timeline (a digest is about none)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.vocabulary import AuditAction, EventKind, OutboxStatus
from leads.notify.operator import retry_outbox
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage.models import Lead, OutboxMessage


async def retry_dead_letters(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    ids: Sequence[uuid.UUID] = (),
    all_dead: bool = False,
    address: str | None = None,
) -> int:
    """Queue the dead letters ``ids`` (or every one, with ``all_dead``) to be sent now; how
    many were. Raises :class:`MessageNotFound` when one of ``ids`` is not a dead letter."""
    query = select(OutboxMessage).where(col(OutboxMessage.status) == OutboxStatus.DEAD)
    if not all_dead:
        query = query.where(col(OutboxMessage.id).in_(list(ids)))
    dead = list((await session.scalars(query)).all())
    wanted = [m.id for m in dead] if all_dead else list(ids)
    if not wanted:
        return 0
    count = await retry_outbox(session=session, ids=wanted, all_dead=False, now=now)
    for message in dead:
        detail = {"message_id": str(message.id), "how": "retried"}
        if message.lead_id is not None and (lead := await session.get(Lead, message.lead_id)):
            add_event(
                session, lead=lead, kind=EventKind.RESENT, actor=actor, now=now, detail=detail
            )
            touch(lead, now)
        await record_audit(
            session=session,
            actor=actor.label,
            action=AuditAction.MESSAGE_RETRIED,
            now=now,
            lead_id=message.lead_id,
            address=address,
            detail=detail,
        )
    return count
