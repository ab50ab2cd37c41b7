"""Response-time statistics: how fast the clinic answers its leads, week by week.

A use case: it takes a session and a ``now`` and reads; ``GET /api/staff/stats`` words it
as JSON. Weeks are ISO weeks (Monday to Sunday) in LEADS_TIMEZONE, newest first, the
current (unfinished) week included. Only counted leads are in it: not spam, not merged into
another.

Per week, of the leads *created* that week:

- ``leads``: how many;
- ``median_response_seconds``, ``p90_response_seconds``: of those answered (given a first
  response: their first status change away from ``new``), the time to it counted in
  opening hours (:meth:`leads.core.hours.OpeningHours.opening_seconds_between`); null when
  none was answered. Percentiles are interpolated linearly between the two nearest ranks
  (the "inclusive" method; numpy's default): with the answers sorted as ``v[0..n-1]``, the
  ``p``-th percentile is at position ``(n - 1) * p``, so the median of four values is the
  mean of the middle two, and one value is its own median and p90;
- ``answered_within_deadline``: the share (0..1) of the week's leads whose first response
  came within LEADS_FOLLOW_UP_HOURS of opening time; a lead not answered yet counts as not
  answered within it; null when the week has no leads;
- ``waiting``: how many are still ``new``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.hours import OpeningHours
from leads.core.vocabulary import LeadStatus
from leads.settings import Settings
from leads.storage.models import Lead
from leads.storage.overdue import counted_condition

MAX_WEEKS = 52


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p`` (0..1) percentile of values sorted ascending, interpolated linearly."""
    position = (len(sorted_values) - 1) * p
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class WeekStats:
    week: date  # its Monday, in LEADS_TIMEZONE
    leads: int
    median_response_seconds: float | None
    p90_response_seconds: float | None
    answered_within_deadline: float | None
    waiting: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "week": self.week.isoformat(),
            "leads": self.leads,
            "median_response_seconds": self.median_response_seconds,
            "p90_response_seconds": self.p90_response_seconds,
            "answered_within_deadline": self.answered_within_deadline,
            "waiting": self.waiting,
        }


@dataclass(frozen=True, slots=True)
class _Counted:
    """What the statistics read of a lead: when it came, where it stands, when answered."""

    created_at: datetime
    status: str
    first_response_at: datetime | None


def _week_stats(
    monday: date, leads: list[_Counted], opening: OpeningHours, follow_up_hours: float
) -> WeekStats:
    answered = sorted(
        opening.opening_seconds_between(lead.created_at, lead.first_response_at)
        for lead in leads
        if lead.first_response_at is not None
    )
    in_time = sum(
        1
        for lead in leads
        if lead.first_response_at is not None
        and lead.first_response_at <= opening.deadline(lead.created_at, follow_up_hours)
    )
    return WeekStats(
        week=monday,
        leads=len(leads),
        median_response_seconds=percentile(answered, 0.5) if answered else None,
        p90_response_seconds=percentile(answered, 0.9) if answered else None,
        answered_within_deadline=in_time / len(leads) if leads else None,
        waiting=sum(1 for lead in leads if lead.status == LeadStatus.NEW),
    )


async def response_stats(
    *, session: AsyncSession, settings: Settings, now: datetime, weeks: int = 8
) -> dict[str, Any]:
    """``{"weeks": [...], "follow_up_hours", "timezone"}``: the last ``weeks`` weeks."""
    opening = settings.opening()
    today = now.astimezone(opening.zone).date()
    mondays = [today - timedelta(days=today.weekday() + 7 * i) for i in range(weeks)]
    starts = [datetime.combine(m, time(), tzinfo=opening.zone) for m in mondays]
    query = (
        select(col(Lead.created_at), col(Lead.status), col(Lead.first_response_at))
        .where(counted_condition())
        .where(col(Lead.created_at) >= starts[-1])
        .order_by(col(Lead.created_at))
    )
    by_week: dict[date, list[_Counted]] = {monday: [] for monday in mondays}
    for row in (await session.execute(query)).all():
        lead = _Counted(*row)
        local = lead.created_at.astimezone(opening.zone).date()
        monday = local - timedelta(days=local.weekday())
        if monday in by_week:  # a lead "from the future" (a clock set wrong) is left out
            by_week[monday].append(lead)
    return {
        "weeks": [
            _week_stats(m, by_week[m], opening, settings.follow_up_hours).as_dict() for m in mondays
        ],
        "follow_up_hours": settings.follow_up_hours,
        "timezone": settings.timezone,
    }
