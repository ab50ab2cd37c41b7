"""Withdrawing a person's consent: recorded on their lead with when and by whom, on its
timeline and in the audit log, and nothing more sent to them.

Staff enter it when the person asks (on the phone, by email). From then on:

- their pending autoreplies become dead letters ("consent withdrawn"), and the delivery
  path refuses any autoreply for the lead as well (a resend, a retry, a later enquiry's);
- the daily digest leaves them out (:mod:`leads.notify.digest`).

The lead itself stays, with the consent record it was given: erasing it is another step.
Withdrawing again changes nothing and answers with the lead as it is: the first
withdrawal's time and actor stand.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind, MessageKind
from leads.errors import StaffLeadNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage import outbox, staff_queries
from leads.storage.models import Lead

WITHDRAWN = "consent withdrawn"  # the reason a stopped message gives


async def withdraw_consent(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """Record that the lead's person withdrew their consent; the lead as it now is."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    if lead.consent_withdrawn_at is not None:
        return lead
    lead.consent_withdrawn_at = now
    lead.consent_withdrawn_by = actor.label
    touch(lead, now)
    stopped = await outbox.stop_pending(
        session=session, lead_id=lead.id, kinds=[MessageKind.AUTOREPLY], reason=WITHDRAWN
    )
    add_event(
        session,
        lead=lead,
        kind=EventKind.CONSENT_WITHDRAWN,
        actor=actor,
        now=now,
        detail={"autoreplies_stopped": stopped},
    )
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.CONSENT_WITHDRAWN,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"autoreplies_stopped": stopped},
    )
    return lead
