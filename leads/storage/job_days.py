"""Chores done once a day across every server and worker: a ``daily_jobs`` row keyed by the
job and the day, inserted by whichever dispatcher gets there first (the digest's idea, in
``leads.storage.overdue``, for any job)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, PrimaryKeyConstraint
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from leads.core.vocabulary import DailyJob
from leads.storage.database import insert_unless_present
from leads.storage.types import UTCDateTime, utcnow


class JobDay(SQLModel, table=True):
    """One row per job per day it was done: the primary key is how servers agree."""

    __tablename__ = "daily_jobs"
    __table_args__ = (PrimaryKeyConstraint("job", "day"),)

    job: str = Field(max_length=30)  # a DailyJob
    day: date
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False)
    )


async def claim_job_day(*, session: AsyncSession, job: DailyJob, day: date, now: datetime) -> bool:
    """Record that ``job`` runs for ``day``; False if another process did first (on
    PostgreSQL a concurrent claim waits for the first one's transaction, then finds the row;
    on SQLite writers take turns)."""
    result = await session.execute(
        insert_unless_present(session, JobDay, key=["job", "day"]).values(
            job=job.value, day=day, created_at=now
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
