"""Which leads are past their follow-up deadline, as one SQL condition; and the days a
digest of them was queued.

A lead is overdue when it is still waiting (status ``new``, not spam, not merged into
another) and was created at or before the cutoff that
:meth:`leads.core.hours.OpeningHours.overdue_cutoff` gives for now and
LEADS_FOLLOW_UP_HOURS: the staff API's ``overdue`` filter, the dashboard, the statistics and
the daily digest all use :func:`overdue_condition`, so they always agree. The digest
leaves out the people who withdrew their consent (:func:`digest_condition`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import and_, func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from leads.core.vocabulary import LeadStatus
from leads.storage.database import insert_unless_present
from leads.storage.models import Lead
from leads.storage.staff_tables import Digest


def counted_condition() -> ColumnElement[bool]:
    """Leads that count: real (not spam) and not merged into another lead."""
    return and_(col(Lead.spam).is_(False), col(Lead.merged_into).is_(None))


def waiting_condition() -> ColumnElement[bool]:
    """Counted leads nobody has answered yet."""
    return and_(counted_condition(), col(Lead.status) == LeadStatus.NEW)


def overdue_condition(cutoff: datetime) -> ColumnElement[bool]:
    """``created_at <= cutoff AND status = 'new' AND spam = false AND merged_into IS NULL``,
    with ``cutoff = settings.opening().overdue_cutoff(now, settings.follow_up_hours)``."""
    return and_(waiting_condition(), col(Lead.created_at) <= cutoff)


def digest_condition(cutoff: datetime) -> ColumnElement[bool]:
    """The overdue leads a digest may name: not those whose consent was withdrawn."""
    return and_(overdue_condition(cutoff), col(Lead.consent_withdrawn_at).is_(None))


async def overdue_leads(*, session: AsyncSession, cutoff: datetime, limit: int) -> list[Lead]:
    """The overdue leads a digest names (:func:`digest_condition`), longest waiting first,
    at most ``limit``."""
    query = (
        select(Lead)
        .where(digest_condition(cutoff))
        .order_by(col(Lead.created_at), col(Lead.id))
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def count_overdue(*, session: AsyncSession, cutoff: datetime) -> int:
    """How many overdue leads a digest would name."""
    query = select(func.count()).select_from(Lead).where(digest_condition(cutoff))
    return int((await session.execute(query)).scalar_one())


async def claim_digest_day(*, session: AsyncSession, day: date, now: datetime) -> bool:
    """Record that ``day``'s digest is being queued; False if another process did first.
    On PostgreSQL a concurrent claim waits for the first one's transaction, then finds the
    row; on SQLite writers take turns. Either way exactly one claim succeeds per day."""
    result = await session.execute(
        insert_unless_present(session, Digest, key=["day"]).values(
            day=day, created_at=now, lead_count=0
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_digest_count(*, session: AsyncSession, day: date, lead_count: int) -> None:
    await session.execute(
        update(Digest).where(col(Digest.day) == day).values(lead_count=lead_count)
    )
