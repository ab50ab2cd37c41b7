""" "Not spam", from the staff side: the lead leaves the spam folder, back to ``new``, and
the clinic's notifications are written now (:func:`leads.staff.spam.release_lead`). Its
timeline and the audit log record who released it."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind, LeadStatus
from leads.errors import LeadNotInSpam, StaffLeadNotFound
from leads.settings import Settings
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.staff.spam import release_lead
from leads.storage import staff_queries
from leads.storage.models import Lead


async def release_from_spam(
    *,
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """Release the lead; raises :class:`LeadNotInSpam` (409) if it is not in the spam folder."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    if not lead.spam:
        raise LeadNotInSpam()
    queued = await release_lead(session=session, settings=settings, lead_id=lead.id, now=now)
    previous = lead.status
    lead.status = LeadStatus.NEW.value
    touch(lead, now)
    add_event(
        session,
        lead=lead,
        kind=EventKind.RELEASED,
        actor=actor,
        now=now,
        detail={"from": previous, "notifications": queued},
    )
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.LEAD_RELEASED,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"notifications": queued},
    )
    return lead
