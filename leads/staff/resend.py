"""Sending a lead's notification again, when staff ask: a delivered one (the clinic's inbox
lost it) is written to the outbox anew, a copy for the same channel and target; a dead one
is retried (the operator's retry). One still on its way is left alone."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind, OutboxStatus
from leads.errors import MessageStillPending, StaffLeadNotFound, StaffMessageNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage import staff_queries
from leads.storage.models import OutboxMessage
from leads.storage.outbox import retry_messages, wake_dispatchers


async def resend_message(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    message_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> OutboxMessage:
    """Queue the message again; the outbox row that will now be sent."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    message = await session.get(OutboxMessage, message_id)
    if message is None or message.lead_id != lead.id:
        raise StaffMessageNotFound()
    if message.status == OutboxStatus.PENDING:
        raise MessageStillPending()
    if message.status == OutboxStatus.DEAD:
        (queued,) = await retry_messages(session=session, now=now, ids=[message.id])
        how = "retried"
    else:
        queued = OutboxMessage(
            lead_id=lead.id,
            enquiry_id=message.enquiry_id,
            kind=message.kind,
            channel=message.channel,
            target=message.target,
            created_at=now,
            scheduled_from=now,
            next_attempt_at=now,
        )
        session.add(queued)
        await wake_dispatchers(session=session)
        how = "copied"
    detail = {"message_id": str(message.id), "queued": str(queued.id), "how": how}
    add_event(session, lead=lead, kind=EventKind.RESENT, actor=actor, now=now, detail=detail)
    touch(lead, now)
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.MESSAGE_RESENT,
        now=now,
        lead_id=lead.id,
        address=address,
        detail=detail,
    )
    return queued
