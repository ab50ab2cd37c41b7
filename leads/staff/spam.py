"""Releasing a lead flagged as spam: staff say it is real. It is marked not spam and the
clinic is told now: its notifications are written to the outbox (never an autoreply: the
address was typed by whoever sent it, and staff can answer it themselves).

A use case: it takes the caller's session and raises domain errors; `leads spam release`
words them for the command line, and a staff page can word them for a browser."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.errors import LeadNotFound, LeadNotSpam
from leads.notify.outbox import messages_for
from leads.settings import Settings
from leads.storage.leads import get_lead, get_lead_by_receipt, mark_not_spam
from leads.storage.outbox import wake_dispatchers


async def release_lead(
    *, session: AsyncSession, settings: Settings, lead_id: uuid.UUID, now: datetime
) -> int:
    """Mark the lead not spam and queue its notifications; how many are now on their way.
    Staff may name the lead by its id or by the receipt its sender was given."""
    lead = await get_lead(session=session, lead_id=lead_id) or await get_lead_by_receipt(
        session=session, receipt_id=lead_id
    )
    if lead is None:
        raise LeadNotFound(f"no lead {lead_id}")
    if not lead.spam:
        raise LeadNotSpam(f"lead {lead_id} is not flagged as spam")
    await mark_not_spam(session=session, lead=lead, now=now)
    messages = messages_for(settings, lead_id=lead.id, enquiry_id=None, visitor_email=None, now=now)
    session.add_all(messages)
    await wake_dispatchers(session=session)
    return len(messages)
