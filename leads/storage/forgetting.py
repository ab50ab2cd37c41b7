"""Removing leads with everything of theirs, for retention and erasure alike.

:func:`forget` takes the leads to remove and, for erasure, the "stray" enquiries: a person's
submissions filed under somebody else's lead (a household sharing an address or a phone).
It removes, in one transaction:

- the leads' enquiries, and the stray enquiries (their lead's ``enquiry_count`` follows);
- their outbox rows (about the lead, or about one of those enquiries): a notification not
  yet sent is never sent. A row a dispatcher has claimed may vanish under it: recording its
  outcome then updates nothing;
- the leads' timeline (status changes, notes, merges...);
- the idempotency records that answer with one of those submissions;
- the leads themselves (another lead pointing at one as ``duplicate_of`` or ``merged_into``
  loses the pointer, by the foreign keys' ``ON DELETE SET NULL``).

The audit log is append-only and stays: entries about a removed lead keep their action,
time and actor, and lose the lead's id. Nothing else in an entry names a visitor.

A dry run (:func:`rehearse`) does it all inside a savepoint and rolls that back: the counts
are exactly what the real thing would remove, and nothing is removed. Ids go to the database
in batches, well inside the bind parameter limits of SQLite and asyncpg.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Delete
from sqlmodel import col

from leads.core.vocabulary import RemovedKind
from leads.storage.models import Enquiry, IdempotencyRecord, Lead, OutboxMessage
from leads.storage.staff_tables import AuditEntry, LeadEvent

BATCH = 500

Counts = Counter[RemovedKind]
T = TypeVar("T")


async def rehearse(session: AsyncSession, work: Callable[[], Awaitable[T]]) -> T:
    """Do ``work`` in a savepoint and undo it: what it would have done, with nothing done."""
    savepoint = await session.begin_nested()
    try:
        return await work()
    finally:
        await savepoint.rollback()


def no_counts() -> Counts:
    """Every kind, at zero: what is printed says each kind, even one with nothing."""
    return Counter(dict.fromkeys(RemovedKind, 0))


async def forget(
    *,
    session: AsyncSession,
    lead_ids: Sequence[uuid.UUID],
    stray_enquiry_ids: Sequence[uuid.UUID] = (),
) -> Counts:
    """Remove these leads and stray enquiries with everything of theirs; how many of each."""
    counts = no_counts()
    for start in range(0, len(lead_ids), BATCH):
        batch = list(lead_ids[start : start + BATCH])
        counts.update(await _forget_leads(session, batch))
    for start in range(0, len(stray_enquiry_ids), BATCH):
        batch = list(stray_enquiry_ids[start : start + BATCH])
        counts.update(await _forget_enquiries(session, batch))
    return counts


async def _forget_leads(session: AsyncSession, lead_ids: list[uuid.UUID]) -> Counts:
    enquiry_ids = list(
        (
            await session.scalars(select(col(Enquiry.id)).where(col(Enquiry.lead_id).in_(lead_ids)))
        ).all()
    )
    outbox = or_(
        col(OutboxMessage.lead_id).in_(lead_ids), col(OutboxMessage.enquiry_id).in_(enquiry_ids)
    )
    plan = {
        RemovedKind.OUTBOX_MESSAGES: delete(OutboxMessage).where(outbox),
        RemovedKind.TIMELINE_ENTRIES: delete(LeadEvent).where(col(LeadEvent.lead_id).in_(lead_ids)),
        RemovedKind.IDEMPOTENCY_KEYS: delete(IdempotencyRecord).where(
            col(IdempotencyRecord.lead_id).in_(lead_ids)
        ),
        RemovedKind.ENQUIRIES: delete(Enquiry).where(col(Enquiry.lead_id).in_(lead_ids)),
        RemovedKind.LEADS: delete(Lead).where(col(Lead.id).in_(lead_ids)),
    }
    await session.execute(
        update(AuditEntry).where(col(AuditEntry.lead_id).in_(lead_ids)).values(lead_id=None)
    )
    return await _run(session, plan)


async def _forget_enquiries(session: AsyncSession, enquiry_ids: list[uuid.UUID]) -> Counts:
    """Enquiries under leads that stay: the leads' counts are set from what remains."""
    owners = list(
        (
            await session.scalars(
                select(col(Enquiry.lead_id)).where(col(Enquiry.id).in_(enquiry_ids)).distinct()
            )
        ).all()
    )
    plan = {
        RemovedKind.OUTBOX_MESSAGES: delete(OutboxMessage).where(
            col(OutboxMessage.enquiry_id).in_(enquiry_ids)
        ),
        RemovedKind.IDEMPOTENCY_KEYS: delete(IdempotencyRecord).where(
            col(IdempotencyRecord.receipt_id).in_(enquiry_ids)
        ),
        RemovedKind.ENQUIRIES: delete(Enquiry).where(col(Enquiry.id).in_(enquiry_ids)),
    }
    counts = await _run(session, plan)
    if owners:
        remaining = (
            select(func.count())
            .select_from(Enquiry)
            .where(col(Enquiry.lead_id) == Lead.id)
            .scalar_subquery()
        )
        await session.execute(
            update(Lead)
            .where(col(Lead.id).in_(owners))
            .values(enquiry_count=remaining + 1, version=col(Lead.version) + 1)
        )
    return counts


async def _run(session: AsyncSession, plan: dict[RemovedKind, Delete]) -> Counts:
    """Each statement in order (children before their parents), counting its rows."""
    counts: Counts = Counter()
    for kind, statement in plan.items():
        result = await session.execute(statement)
        counts[kind] += int(result.rowcount)  # type: ignore[attr-defined]
    return counts
