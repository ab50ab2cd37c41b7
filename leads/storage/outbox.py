"""Data access for the notification outbox.

Claims: a dispatcher picks due rows, oldest first (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL), then sets ``claimed_by`` and a lease (``claimed_until``) with an UPDATE that
repeats the "still free" condition, and takes back only the rows that now carry its own
name and lease. On SQLite the pick is not locked (the driver begins the transaction at the
first write), so that condition is what makes two processes' claims exclusive. If a
dispatcher dies its lease runs out and another takes the message over: delivery is at
least once, with the same id. An outcome is recorded only while the claim is still the
recorder's own.

The dispatcher's statements (the pick, the claim's UPDATE, the claimed rows read back with
their leads, the outcomes' UPDATEs) are built once, with bound parameters, and run as Core
where no objects are needed: building, compiling and synchronising ORM statements cost the
worker more CPU than the database's own work (docs/performance.md). A turn's outcomes are
plain data, written with one executemany per kind (:mod:`leads.storage.outcomes`).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from leads.core.vocabulary import Channel, OutboxStatus
from leads.storage import outbox_routes as routes
from leads.storage.database import insert_unless_present
from leads.storage.models import DisabledWebhook, Enquiry, Lead, OutboxMessage
from leads.storage.outbox_routes import Route as Route
from leads.storage.plans import unindexed

NOTIFY_CHANNEL = "leads_outbox"


async def wake_dispatchers(*, session: AsyncSession) -> None:
    """On PostgreSQL, tell every listening dispatcher (on commit) that work is waiting."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))


OUTBOX = cast("Table", OutboxMessage.__table__)  # type: ignore[attr-defined]

# The order messages are claimed in: as they came due. A new message is due when it is
# written, so a burst goes out in the order its leads came; a retry takes its place when its
# time comes. ix_outbox_route is (status, channel, target, *CLAIM_ORDER): a claim seeks
# into each route and stops at its room.
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
    """:func:`claim_due_with_leads`, the messages alone."""
    claim = await claim_due_with_leads(
        session=session,
        worker=worker,
        now=now,
        lease_until=lease_until,
        limit=limit,
        per_route=per_route,
        in_flight=in_flight,
        excluding=excluding,
    )
    return [message for message, _ in claim.taken]


@dataclass(frozen=True, slots=True)
class Claim:
    """What a claim took (each message with the lead it announces, None for a digest), and
    the routes it found with pending messages (due or not, claimed or not): none means
    nothing at all is waiting."""

    taken: list[tuple[OutboxMessage, Lead | None]]
    waiting: list[Route]


async def claim_due_with_leads(
    *,
    session: AsyncSession,
    worker: str,
    now: datetime,
    lease_until: datetime,
    limit: int,
    per_route: int | None = None,
    in_flight: Mapping[Route, int] | None = None,
    excluding: Collection[uuid.UUID] = (),
) -> Claim:
    """Claim up to ``limit`` due messages in :data:`CLAIM_ORDER`, each with the lead it
    announces (None for a digest). With ``per_route``, no route ends up with more than
    that many claimed counting the ``in_flight`` already (so one stalled route cannot take
    every slot); each route gets its own room, so another route's messages behind a full
    one's are claimed too, and fewer than ``limit`` claimed means nothing more is
    claimable now. ``excluding``: messages this dispatcher
    still has in flight or has not recorded yet, never claimed again even if their lease
    has run out.

    The pick never reads past a full route's backlog: it walks ``ix_outbox_route`` from
    route to route (:data:`~leads.storage.outbox_routes.ROUTES`), then seeks into each route
    with room for its first few (:func:`~leads.storage.outbox_routes.seek`), so a claim
    costs the number of routes waiting, not the number of messages. Every statement is
    built once (bound parameters, ``IN`` lists expanded as they run), so a claim pays for
    neither building nor compiling SQL; the pick and the UPDATE are Core, and one query
    reads the claimed rows back with their leads."""
    connection = await session.connection()
    busy = in_flight or {}
    rooms: list[tuple[Route, int]] = []
    waiting: list[Route] = []
    for channel, target in (await connection.execute(routes.ROUTES)).all():
        route = (str(channel), target)
        waiting.append(route)
        left = limit if per_route is None else min(limit, per_route - busy.get(route, 0))
        if left > 0:
            rooms.append((route, left))
    found: list[Any] = []
    for start in range(0, len(rooms), routes.SEEKS_PER_STATEMENT):
        chunk = rooms[start : start + routes.SEEKS_PER_STATEMENT]
        chunk_routes = [route for route, _ in chunk]
        params = {"now": now, "limit": limit, "excluding": list(excluding)}
        params.update(routes.params(chunk_routes))
        params.update({f"room_{i}": left for i, (_, left) in enumerate(chunk)})
        found += (await connection.execute(routes.seek(routes.kinds(chunk_routes)), params)).all()
    if len(rooms) > routes.SEEKS_PER_STATEMENT:  # each statement's in order: merge them
        found.sort(key=lambda row: (row.next_attempt_at, row.created_at, row.id))
    ids: list[uuid.UUID] = [row.id for row in found[:limit]]
    if not ids:
        return Claim([], waiting)
    claim = {"ids": ids, "now": now, "worker": worker, "lease_until": lease_until}
    await connection.execute(CLAIM, claim)
    claimed = await session.execute(CLAIMED, claim)
    return Claim([(message, lead) for message, lead in claimed.all()], waiting)


# Still free to claim: the statement names its rows (by id), so the status test is kept
# off ix_outbox_route (leads/storage/plans.py).
CLAIM = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .where(unindexed(OUTBOX.c.status) == OutboxStatus.PENDING, routes.free(bindparam("now")))
    .values(
        claimed_by=bindparam("worker"),
        claimed_until=bindparam("lease_until"),
        attempts=OUTBOX.c.attempts + 1,
    )
)
# What the claim took: the rows that now carry our name and lease, with their leads.
CLAIMED = (
    select(OutboxMessage, Lead)
    .outerjoin(Lead, col(Lead.id) == col(OutboxMessage.lead_id))
    .where(col(OutboxMessage.id).in_(bindparam("ids", expanding=True)))
    .where(col(OutboxMessage.claimed_by) == bindparam("worker"))
    .where(col(OutboxMessage.claimed_until) == bindparam("lease_until"))
    .order_by(*CLAIM_ORDER)
    .execution_options(populate_existing=True)
)


async def load_enquiries(
    *, session: AsyncSession, messages: Sequence[OutboxMessage]
) -> dict[uuid.UUID, Enquiry]:
    """The enquiries (follow-ups) a batch of messages announces, in one query, or none."""
    enquiry_ids = {m.enquiry_id for m in messages if m.enquiry_id is not None}
    if not enquiry_ids:
        return {}
    enquiries = await session.scalars(select(Enquiry).where(col(Enquiry.id).in_(enquiry_ids)))
    return {e.id: e for e in enquiries.all()}


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
    connection = await session.connection()
    statement = routes.earliest(len(skipping))
    due: datetime | None = (
        await connection.execute(statement, routes.params(list(skipping)))
    ).scalar_one_or_none()
    return due


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
