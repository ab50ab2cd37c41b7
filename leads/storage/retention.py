"""Retention: what is removed once it is old enough, daily and by ``leads purge``.

- **A lead** goes LEADS_RETENTION_DAYS after its last activity; a lead in the spam folder
  LEADS_SPAM_RETENTION_DAYS after it. Its last activity is the latest of its last enquiry
  (``last_enquiry_at``), its last change (``updated_at``) and its newest timeline entry (a
  note, say): a lead someone is still working on is never removed. It goes with everything
  of its own (:func:`leads.storage.forgetting.forget`).
- **Notifications about no lead** (the daily digest's rows), once delivered or dead, go
  LEADS_RETENTION_DAYS after they were written.
- **Idempotency keys** go once they no longer answer (REPLAY_WINDOW); **staff sessions**
  once they have ended (past their absolute limit, idle too long, or started before their
  user's password change or disabling).
- **The audit log** stays; entries about a removed lead lose its id. ``leads purge`` adds
  one entry, ``purge``, with the counts; the daily purge adds one when it removed anything.

The service purges once a day: every dispatcher calls :func:`purge_once_a_day` from its
housekeeping, and the ``daily_jobs`` row for (purge, the UTC date) makes exactly one of them
do it. This module is in storage, not in :mod:`leads.privacy`, so that the notification side
can call it without depending on the staff side.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Delete, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from leads.core.vocabulary import REPLAY_WINDOW, AuditAction, DailyJob, OutboxStatus, RemovedKind
from leads.settings import Settings
from leads.storage.forgetting import Counts, forget, no_counts, rehearse
from leads.storage.job_days import claim_job_day
from leads.storage.models import IdempotencyRecord, Lead, OutboxMessage
from leads.storage.staff_tables import AuditEntry, LeadEvent, StaffSession, User

log = logging.getLogger("leads.privacy")


@dataclass(frozen=True, slots=True)
class Retention:
    """How long things are kept: the settings, as durations."""

    leads: timedelta
    spam: timedelta
    session_idle: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(
            leads=timedelta(days=settings.retention_days),
            spam=timedelta(days=settings.spam_retention_days),
            session_idle=timedelta(minutes=settings.session_idle_minutes),
        )


def _inactive_since(cutoff: datetime) -> ColumnElement[bool]:
    recent_event = (
        select(col(LeadEvent.id))
        .where(col(LeadEvent.lead_id) == Lead.id, col(LeadEvent.at) >= cutoff)
        .exists()
    )
    return and_(col(Lead.last_enquiry_at) < cutoff, col(Lead.updated_at) < cutoff, ~recent_event)


async def expired_leads(
    *, session: AsyncSession, retention: Retention, now: datetime
) -> list[uuid.UUID]:
    """The leads whose time is up, oldest activity first."""
    query = select(col(Lead.id)).where(
        or_(
            and_(col(Lead.spam).is_(False), _inactive_since(now - retention.leads)),
            and_(col(Lead.spam).is_(True), _inactive_since(now - retention.spam)),
        )
    )
    return list((await session.scalars(query.order_by(col(Lead.last_enquiry_at)))).all())


async def purge_expired(
    *,
    session: AsyncSession,
    retention: Retention,
    now: datetime,
    actor: str,
    dry_run: bool = False,
    record_nothing: bool = True,
    sessions: bool = True,
) -> Counts:
    """Remove everything past its time, in the caller's transaction; or, dry, only count it.
    A real purge is recorded in the audit log with its counts (one that removed nothing
    only if ``record_nothing``)."""
    if dry_run:
        return await rehearse(session, lambda: _purge(session, retention, now, sessions))
    counts = await _purge(session, retention, now, sessions)
    if record_nothing or any(counts.values()):
        session.add(
            AuditEntry(
                at=now,
                actor=actor,
                action=AuditAction.PURGE.value,
                detail={kind.value: counts[kind] for kind in RemovedKind},
            )
        )
    return counts


async def _purge(
    session: AsyncSession, retention: Retention, now: datetime, sessions: bool
) -> Counts:
    counts = no_counts()
    leads = await expired_leads(session=session, retention=retention, now=now)
    counts.update(await forget(session=session, lead_ids=leads))
    chores: list[tuple[RemovedKind, Delete]] = [
        (
            RemovedKind.OUTBOX_MESSAGES,
            delete(OutboxMessage).where(
                col(OutboxMessage.lead_id).is_(None),
                col(OutboxMessage.status) != OutboxStatus.PENDING,
                col(OutboxMessage.created_at) < now - retention.leads,
            ),
        ),
        (
            RemovedKind.IDEMPOTENCY_KEYS,
            delete(IdempotencyRecord).where(
                col(IdempotencyRecord.created_at) < now - REPLAY_WINDOW
            ),
        ),
    ]
    if sessions:
        ended = delete(StaffSession).where(_ended_sessions(now, retention.session_idle))
        chores.append((RemovedKind.SESSIONS, ended))
    for kind, statement in chores:
        result = await session.execute(statement)
        counts[kind] += int(result.rowcount)  # type: ignore[attr-defined]
    return counts


def _ended_sessions(now: datetime, idle: timedelta) -> ColumnElement[bool]:
    superseded = (
        select(col(User.id))
        .where(
            col(User.id) == StaffSession.user_id,
            or_(
                col(User.active).is_(False), col(User.sessions_valid_from) > StaffSession.created_at
            ),
        )
        .exists()
    )
    return or_(
        col(StaffSession.expires_at) <= now,
        col(StaffSession.last_seen_at) <= now - idle,
        superseded,
    )


async def purge_once_a_day(
    *, session: AsyncSession, settings: Settings, now: datetime
) -> Counts | None:
    """Today's purge (the UTC date), if no other server or worker has done it: its counts,
    or None when it was done already."""
    if not await claim_job_day(
        session=session, job=DailyJob.PURGE, day=now.astimezone(UTC).date(), now=now
    ):
        return None
    counts = await purge_expired(
        session=session,
        retention=Retention.from_settings(settings),
        now=now,
        actor="system",
        record_nothing=False,  # the daily_jobs row says it ran; the audit log, what it removed
        # Ended sessions are cleared at each sign-in, and by `leads purge`; not here, where
        # "now" is the dispatcher's clock, which need not be the one sessions are timed by.
        sessions=False,
    )
    log.info("retention: purged %s", ", ".join(f"{counts[k]} {k.label}" for k in RemovedKind))
    return counts
