"""`leads spam release ID`: staff say a flagged lead is real. It is marked not spam and the
clinic is told now: its notifications are written to the outbox (never an autoreply: the
address was typed by whoever sent it, and staff can answer it themselves)."""

from __future__ import annotations

import uuid

from leads.errors import ConfigurationError
from leads.notify.outbox import messages_for
from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.leads import get_lead, get_lead_by_receipt, mark_not_spam
from leads.storage.outbox import wake_dispatchers
from leads.storage.types import utcnow


async def release_lead(settings: Settings, lead_id: str) -> int:
    """Returns how many notifications are now on their way."""
    try:
        key = uuid.UUID(lead_id)
    except ValueError:
        raise ConfigurationError(f"{lead_id!r} is not a lead id") from None
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            # Staff may paste the lead's id or the receipt its sender was given.
            lead = await get_lead(session=session, lead_id=key) or await get_lead_by_receipt(
                session=session, receipt_id=key
            )
            if lead is None:
                raise ConfigurationError(f"no lead {lead_id}")
            if not lead.spam:
                raise ConfigurationError(f"lead {lead_id} is not flagged as spam")
            now = utcnow()
            await mark_not_spam(session=session, lead=lead, now=now)
            messages = messages_for(
                settings, lead_id=lead.id, enquiry_id=None, visitor_email=None, now=now
            )
            session.add_all(messages)
            await wake_dispatchers(session=session)
            return len(messages)
    finally:
        await database.close()
