"""Releasing a lead flagged as spam: staff say it is real. It leaves the spam folder (back
to ``new``) and the clinic is told now: its notifications are written to the outbox (never
an autoreply: the address was typed by whoever sent it, and staff can answer it
themselves). The lead's timeline and the audit log record who released it.

A use case: it takes the caller's session and raises domain errors; `leads spam release`
words them for the command line, the staff API and pages for theirs."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.forms import FormCatalog
from leads.core.routing import NO_ROUTING
from leads.core.vocabulary import AuditAction, EventKind, LeadStatus
from leads.errors import LeadNotFound, LeadNotSpam
from leads.notify.outbox import messages_for
from leads.settings import Settings
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage import staff_queries
from leads.storage.leads import get_lead_by_receipt, mark_not_spam
from leads.storage.models import Lead
from leads.storage.outbox import wake_dispatchers


async def release_lead(
    *,
    session: AsyncSession,
    settings: Settings,
    forms: FormCatalog,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
    by_receipt: bool = False,
) -> tuple[Lead, int]:
    """Mark the lead not spam and queue its notifications: the lead, and how many are now
    on their way. With ``by_receipt`` the lead may also be named by the receipt its sender
    was given (the command line takes either)."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None and by_receipt:
        lead = await get_lead_by_receipt(session=session, receipt_id=lead_id)
    if lead is None:
        raise LeadNotFound(f"no lead {lead_id}")
    if not lead.spam:
        raise LeadNotSpam(f"lead {lead_id} is not flagged as spam")
    await mark_not_spam(session=session, lead=lead, now=now)
    previous = lead.status
    lead.status = LeadStatus.NEW.value
    touch(lead, now)
    form = forms.forms.get(lead.form)  # its routing; a form since removed: the settings'
    messages = messages_for(
        settings,
        lead_id=lead.id,
        enquiry_id=None,
        visitor_email=None,
        routing=form.routing if form else NO_ROUTING,
        now=now,
    )
    session.add_all(messages)
    add_event(
        session,
        lead=lead,
        kind=EventKind.RELEASED,
        actor=actor,
        now=now,
        detail={"from": previous, "notifications": len(messages)},
    )
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.LEAD_RELEASED,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"notifications": len(messages)},
    )
    await wake_dispatchers(session=session)
    return lead, len(messages)
