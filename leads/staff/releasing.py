""" "Not spam" through the staff API and pages: :func:`leads.staff.spam.release_lead`, its
domain errors worded as HTTP problems (404, 409)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.forms import FormCatalog
from leads.errors import LeadNotFound, LeadNotInSpam, LeadNotSpam, StaffLeadNotFound
from leads.settings import Settings
from leads.staff.access import Actor
from leads.staff.spam import release_lead
from leads.storage.models import Lead


async def release_from_spam(
    *,
    session: AsyncSession,
    settings: Settings,
    forms: FormCatalog,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """Release the lead; raises :class:`LeadNotInSpam` (409) if it is not in the spam folder."""
    try:
        lead, _queued = await release_lead(
            session=session,
            settings=settings,
            forms=forms,
            actor=actor,
            lead_id=lead_id,
            now=now,
            address=address,
        )
    except LeadNotFound:
        raise StaffLeadNotFound() from None
    except LeadNotSpam:
        raise LeadNotInSpam() from None
    return lead
