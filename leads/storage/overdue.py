"""Which leads are past their follow-up deadline, as one SQL condition.

A lead is overdue when it is still waiting (status ``new``, not spam, not merged into
another) and was created at or before the cutoff that
:meth:`leads.core.hours.OpeningHours.overdue_cutoff` gives for now and
LEADS_FOLLOW_UP_HOURS: the staff API's ``overdue`` filter, the dashboard, the statistics and
the daily digest all use :func:`overdue_condition`, so they always agree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from leads.core.vocabulary import LeadStatus
from leads.storage.models import Lead


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


async def overdue_leads(*, session: AsyncSession, cutoff: datetime, limit: int) -> list[Lead]:
    """The overdue leads, longest waiting first, at most ``limit``."""
    query = (
        select(Lead)
        .where(overdue_condition(cutoff))
        .order_by(col(Lead.created_at), col(Lead.id))
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def count_overdue(*, session: AsyncSession, cutoff: datetime) -> int:
    query = select(func.count()).select_from(Lead).where(overdue_condition(cutoff))
    return int((await session.execute(query)).scalar_one())
