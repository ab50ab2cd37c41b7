"""The daily digest: once a day, at LEADS_DIGEST_AT in LEADS_TIMEZONE on the days the clinic
opens, one email to LEADS_INBOX listing the leads past their follow-up deadline.

- **When.** The dispatcher's housekeeping asks :func:`due_day` every turn (a comparison of
  times, no query); once the time has come on an opening day it runs :func:`queue_digest`
  for that day, once. A dispatcher that starts later that day (after a restart, say) still
  queues it, late; the next day's waits for the next LEADS_DIGEST_AT.
- **Exactly once.** :func:`queue_digest` inserts the day's ``digests`` row (its primary key
  is the local date) and, in the same transaction, one outbox message (``lead_id`` None,
  kind ``digest``) per configured email channel. Another server or worker doing the same
  finds the row and queues nothing.
- **Nothing overdue.** The day is still recorded (with ``lead_count`` 0) and no email is
  sent: a lead that becomes overdue later that day is in the next day's digest.
- **Current content.** The message holds no content: the list is read from the database
  when the message is claimed for delivery (:func:`load_digest`), so a lead answered in the
  meantime is left out, and a retry an hour later shows the list as it is then.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.forms import FormCatalog
from leads.core.hours import OpeningHours
from leads.core.vocabulary import MessageKind
from leads.notify.channels import builtin_channels
from leads.notify.content import first_name, lead_url
from leads.notify.digest_content import DigestContent, DigestRow
from leads.settings import Settings
from leads.storage.models import OutboxMessage
from leads.storage.outbox import wake_dispatchers
from leads.storage.overdue import (
    claim_digest_day,
    count_overdue,
    overdue_leads,
    set_digest_count,
)

log = logging.getLogger("leads.notify")

ROWS_SHOWN = 50  # the longest waiting; the email says how many more there are


def digest_time(settings: Settings) -> time | None:
    if settings.digest_at is None:
        return None
    hours, minutes = settings.digest_at.split(":")
    return time(int(hours), int(minutes))


def due_day(settings: Settings, opening: OpeningHours, now: datetime) -> date | None:
    """The local date whose digest is due at ``now``: an opening day, LEADS_DIGEST_AT
    passed; None before the time, on a closed day, or with no digest configured."""
    at = digest_time(settings)
    if at is None:
        return None
    local = now.astimezone(opening.zone)
    if local.time() < at or not opening.is_open_day(local.date()):
        return None
    return local.date()


async def queue_digest(
    *, session: AsyncSession, settings: Settings, day: date, now: datetime
) -> int | None:
    """Queue ``day``'s digest: how many leads are overdue (0: recorded, nothing sent), or
    None if another process queued it already."""
    if not await claim_digest_day(session=session, day=day, now=now):
        return None
    opening = settings.opening()
    cutoff = opening.overdue_cutoff(now, settings.follow_up_hours)
    overdue = await count_overdue(session=session, cutoff=cutoff)
    await set_digest_count(session=session, day=day, lead_count=overdue)
    if overdue:
        session.add_all(
            OutboxMessage(
                lead_id=None,
                kind=MessageKind.DIGEST,
                channel=route.channel,
                created_at=now,
                scheduled_from=now,
                next_attempt_at=now,
            )
            for route in builtin_channels().email_routes(settings)
        )
        await wake_dispatchers(session=session)
    log.info("digest for %s queued: %d overdue leads", day.isoformat(), overdue)
    return overdue


async def load_digest(
    *, session: AsyncSession, settings: Settings, forms: FormCatalog, now: datetime
) -> DigestContent:
    """What the digest says at ``now``: the overdue leads, by first name and form only."""
    cutoff = settings.opening().overdue_cutoff(now, settings.follow_up_hours)
    leads = await overdue_leads(session=session, cutoff=cutoff, limit=ROWS_SHOWN)
    total = (
        await count_overdue(session=session, cutoff=cutoff)
        if len(leads) == ROWS_SHOWN
        else len(leads)
    )
    rows = tuple(
        DigestRow(
            first_name=first_name(lead.name),
            form_title=form.title if (form := forms.forms.get(lead.form)) else lead.form,
            created_at=lead.created_at,
            url=lead_url(lead, settings),
        )
        for lead in leads
    )
    return DigestContent(now=now, rows=rows, total=total)
