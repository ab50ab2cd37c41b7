"""Data access for the notification outbox.

Claims: a dispatcher picks due rows, oldest first (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), then sets ``claimed_by`` and a lease (``claimed_until``) with an UPDATE that
repeats the "still free" condition, and takes back only the rows that now carry its own
name and lease. On SQLite the pick is not locked (the driver begins the transaction at the
first write), so that condition is what makes two processes' claims exclusive. If a
dispatcher dies its lease runs out and another takes the message over: delivery is at
least once, with the same id. An outcome is recorded only while the claim is still the
recorder's own.

The dispatcher's UPDATEs run in transactions of their own with nothing loaded that they
change, so they skip SQLAlchemy's session synchronisation (``synchronize_session=False``),
which evaluated each one's WHERE against the session's objects and cost more CPU than the
statement itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, func, not_, or_, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from leads.core.vocabulary import Channel, OutboxStatus
from leads.storage.database import insert_unless_present
from leads.storage.models import DisabledWebhook, Enquiry, Lead, OutboxMessage
from leads.storage.plans import unindexed

NOTIFY_CHANNEL = "leads_outbox"


async def wake_dispatchers(*, session: AsyncSession) -> None:
    """On PostgreSQL, tell every listening dispatcher (on commit) that work is waiting."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


Route = tuple[str, str | None]  # (channel, target): where a message goes

# The order messages are claimed in: as they came due. A new message is due when it is
# written, so a burst goes out in the order its leads came; a retry takes its place when its
# time comes. ix_outbox_due is (status, *CLAIM_ORDER): a claim seeks and stops at its limit.
CLAIM_ORDER = (
    col(OutboxMessage.next_attempt_at),
    col(OutboxMessage.created_at),
    col(OutboxMessage.id),
)


async def claim_due(
    *,
    session: AsyncSession,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_route: int | None = None,
    in_flight: Mapping[Route, int] | None = None,
    excluding: Collection[uuid.UUID] = (),
) -> list[OutboxMessage]:
    """Claim up to ``limit`` due messages in :data:`CLAIM_ORDER`. With ``per_route``, no
    route ends up with more than that many claimed counting the ``in_flight`` already (so
    one stalled route cannot take every slot). ``excluding``: messages this dispatcher still
    has in flight or has not recorded yet, never claimed again even if their lease has run
    out."""
    in_flight = in_flight or {}
    full = [r for r, n in in_flight.items() if per_route is not None and n >= per_route]
    due = (
        select(OutboxMessage.id, OutboxMessage.channel, OutboxMessage.target)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .where(col(OutboxMessage.next_attempt_at) <= now)
        .where(
            or_(
                col(OutboxMessage.claimed_until).is_(None),
                col(OutboxMessage.claimed_until) < now,
            )
        )
        .where(*_not_routes(full))
        .order_by(*CLAIM_ORDER)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if excluding:
        due = due.where(col(OutboxMessage.id).not_in(list(excluding)))
    room = dict(in_flight)
    ids: list[uuid.UUID] = []
    for message_id, channel, target in (await session.execute(due)).all():
        route = (str(channel), target)
        if per_route is None or room.get(route, 0) < per_route:
            room[route] = room.get(route, 0) + 1
            ids.append(message_id)
    if not ids:
        return []
    await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids), *_still_free(now))
        .values(
            claimed_by=worker,
            claimed_until=lease_until,
            attempts=OutboxMessage.attempts + 1,
        )
        .execution_options(synchronize_session=False)  # the rows are read back just below
    )
    rows = await session.scalars(
        select(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids))
        .where(col(OutboxMessage.claimed_by) == worker)
        .where(col(OutboxMessage.claimed_until) == lease_until)
        .order_by(*CLAIM_ORDER)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


def _not_routes(routes: Sequence[Route]) -> list[ColumnElement[bool]]:
    """Conditions leaving out the messages of these routes."""
    return [
        not_(
            and_(
                col(OutboxMessage.channel) == channel,
                col(OutboxMessage.target).is_(None)
                if target is None
                else col(OutboxMessage.target) == target,
            )
        )
        for channel, target in routes
    ]


def _still_free(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Still free to claim: for a statement that names its rows (by id), so the status
    test is kept off ix_outbox_due (leads/storage/plans.py)."""
    return (
        unindexed(col(OutboxMessage.status)) == OutboxStatus.PENDING,
        or_(
            col(OutboxMessage.claimed_until).is_(None),
            col(OutboxMessage.claimed_until) < now,
        ),
    )


def _ours(message_id: uuid.UUID, worker: str) -> tuple[ColumnElement[bool], ...]:
    return (col(OutboxMessage.id) == message_id, col(OutboxMessage.claimed_by) == worker)


async def load_subjects(
    *, session: AsyncSession, messages: Sequence[OutboxMessage]
) -> tuple[dict[uuid.UUID, Lead], dict[uuid.UUID, Enquiry]]:
    """The leads and enquiries a batch of messages announces, in two queries."""
    lead_ids = {m.lead_id for m in messages}
    enquiry_ids = {m.enquiry_id for m in messages if m.enquiry_id is not None}
    leads = (await session.scalars(select(Lead).where(col(Lead.id).in_(lead_ids)))).all()
    enquiries = (
        (await session.scalars(select(Enquiry).where(col(Enquiry.id).in_(enquiry_ids)))).all()
        if enquiry_ids
        else []
    )
    return {lead.id: lead for lead in leads}, {e.id: e for e in enquiries}


async def release_claims(*, session: AsyncSession, ids: Sequence[uuid.UUID], worker: str) -> None:
    """Give back messages we claimed but did not finish (graceful shutdown)."""
    if ids:
        await session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(list(ids)), col(OutboxMessage.claimed_by) == worker)
            .where(unindexed(col(OutboxMessage.status)) == OutboxStatus.PENDING)
            .values(claimed_by=None, claimed_until=None, attempts=OutboxMessage.attempts - 1)
            .execution_options(synchronize_session=False)
        )


async def mark_delivered(
    *, session: AsyncSession, message_id: uuid.UUID, worker: str, now: datetime
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(*_ours(message_id, worker))
        .values(
            status=OutboxStatus.DELIVERED, delivered_at=now, claimed_by=None, claimed_until=None
        )
        .execution_options(synchronize_session=False)
    )


async def mark_retry(
    *, session: AsyncSession, message_id: uuid.UUID, worker: str, at: datetime, error: str
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(*_ours(message_id, worker))
        .values(next_attempt_at=at, last_error=error[:500], claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


async def mark_dead(
    *, session: AsyncSession, message_id: uuid.UUID, worker: str, error: str
) -> None:
    await session.execute(
        update(OutboxMessage)
        .where(*_ours(message_id, worker))
        .values(
            status=OutboxStatus.DEAD, last_error=error[:500], claimed_by=None, claimed_until=None
        )
        .execution_options(synchronize_session=False)
    )


async def stop_pending(
    *, session: AsyncSession, lead_id: uuid.UUID, kinds: Sequence[str], reason: str
) -> int:
    """Make a lead's pending messages of these kinds dead letters, with ``reason``; how
    many. A claim in flight is left in place, so its outcome, if it gets one, is recorded."""
    result = await session.execute(
        update(OutboxMessage)
        .where(col(OutboxMessage.lead_id) == lead_id)
        .where(unindexed(col(OutboxMessage.status)) == OutboxStatus.PENDING)
        .where(col(OutboxMessage.kind).in_(list(kinds)))
        .values(status=OutboxStatus.DEAD, last_error=reason[:500])
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def disable_webhook(*, session: AsyncSession, url: str, reason: str, now: datetime) -> None:
    """Idempotent: two deliveries meeting 410 at once both succeed in switching it off."""
    await session.execute(
        insert_unless_present(session, DisabledWebhook, key=["url"]).values(
            url=url, reason=reason[:200], disabled_at=now
        )
    )


async def next_due(*, session: AsyncSession, skipping: Sequence[Route] = ()) -> datetime | None:
    """When the earliest waiting message comes due (a retry, or an expired lease), not
    counting the ``skipping`` routes' (their slots are full: a finishing delivery wakes
    the dispatcher)."""
    waiting = (
        select(func.min(col(OutboxMessage.next_attempt_at)))
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING)
        .where(col(OutboxMessage.claimed_until).is_(None))
        .where(*_not_routes(skipping))
    )
    return (await session.execute(waiting)).scalar_one_or_none()


async def disabled_webhooks(*, session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(DisabledWebhook.url))).all())


async def list_messages(
    *, session: AsyncSession, statuses: Sequence[str] = (), lead_ids: Sequence[uuid.UUID] = ()
) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(col(OutboxMessage.created_at))
    if statuses:
        query = query.where(col(OutboxMessage.status).in_(list(statuses)))
    if lead_ids:
        query = query.where(col(OutboxMessage.lead_id).in_(list(lead_ids)))
    return list((await session.scalars(query)).all())


async def retry_messages(
    *, session: AsyncSession, now: datetime, ids: Sequence[uuid.UUID] = (), all_dead: bool = False
) -> list[OutboxMessage]:
    """An operator's retry: back to pending, due now, with a fresh give-up horizon. Retrying
    a message to a switched-off webhook switches that webhook on again."""
    query = select(OutboxMessage).where(
        unindexed(col(OutboxMessage.status)).in_([OutboxStatus.DEAD, OutboxStatus.PENDING])
    )
    if all_dead:
        query = query.where(col(OutboxMessage.status) == OutboxStatus.DEAD)
    else:
        query = query.where(col(OutboxMessage.id).in_(list(ids)))
    messages = list((await session.scalars(query)).all())
    for message in messages:
        message.status = OutboxStatus.PENDING
        message.next_attempt_at = now
        message.scheduled_from = now
        message.claimed_by = None
        message.claimed_until = None
        message.handed_over_at = None  # a text the operator sends again on purpose
    urls = {m.target for m in messages if m.channel == Channel.WEBHOOK and m.target}
    if urls:
        await session.execute(delete(DisabledWebhook).where(col(DisabledWebhook.url).in_(urls)))
    await wake_dispatchers(session=session)
    return messages
