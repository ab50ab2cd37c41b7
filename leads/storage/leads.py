"""Data access for leads: plain async functions taking the session by keyword."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, select, text, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import LeadStatus
from leads.storage.models import Enquiry, IdempotencyRecord, Lead

# How many open leads per email or phone a batch considers: the newest. Normally one or two;
# a flood of submissions sharing one phone (or email) would otherwise make every later
# batch load and compare all of them.
MATCHES_PER_CONTACT = 10


async def find_open_leads(
    *,
    session: AsyncSession,
    email_keys: Collection[str],
    phones: Collection[str],
    since: datetime,
) -> list[Lead]:
    """Non-spam leads still ``new``, active since ``since``, with any of these emails or
    phones, the :data:`MATCHES_PER_CONTACT` newest per email and per phone: one query for a
    whole batch of submissions (rows locked on PostgreSQL)."""
    if not email_keys and not phones:
        return []
    query = _find_open(bool(email_keys), bool(phones))
    values = {"email_keys": list(email_keys), "phones": list(phones), "since": since}
    return list((await session.execute(query, values)).scalars().all())


def _newest(contact: Any, values: str) -> Select[tuple[uuid.UUID]]:
    """The ids of the newest open leads per value of ``contact`` (an email key or a phone)
    among the bound list ``values``, active since the bound ``since``."""
    newest_first = (col(Lead.last_enquiry_at).desc(), col(Lead.id))
    ranked = (
        select(
            col(Lead.id).label("id"),
            func.row_number().over(partition_by=contact, order_by=newest_first).label("rank"),
        )
        .where(contact.in_(bindparam(values, expanding=True)))
        .where(col(Lead.status) == LeadStatus.NEW, col(Lead.spam).is_(False))
        .where(col(Lead.last_enquiry_at) >= bindparam("since"))
        .subquery()
    )
    return select(ranked.c.id).where(ranked.c.rank <= MATCHES_PER_CONTACT)


@functools.cache  # built once per shape: building it cost more than running it, for a small batch
def _find_open(by_email: bool, by_phone: bool) -> Select[Lead]:
    """The leads whose ids one list gives: the newest per email UNION the newest per phone.
    Not ``id IN (per email) OR id IN (per phone)``: PostgreSQL answers that OR with a
    sequential scan of every lead, testing each against both lists (25-40 ms a batch at
    100,000 leads), where one ``IN`` list is a seek by primary key per id."""
    found = []
    if by_email:
        found.append(_newest(col(Lead.email_key), "email_keys"))
    if by_phone:
        found.append(_newest(col(Lead.phone), "phones"))
    ids = found[0] if len(found) == 1 else union(*found)
    return select(Lead).where(col(Lead.id).in_(ids)).with_for_update()


async def get_idempotency_records(
    *, session: AsyncSession, keys: Collection[str]
) -> dict[str, IdempotencyRecord]:
    if not keys:
        return {}
    query = select(IdempotencyRecord).where(col(IdempotencyRecord.key).in_(list(keys)))
    return {record.key: record for record in (await session.scalars(query)).all()}


async def lock_contacts(*, session: AsyncSession, keys: list[str]) -> None:
    """On PostgreSQL, serialise concurrent submissions by the same person (transaction-scoped
    advisory locks, taken in a fixed order so two submissions cannot deadlock)."""
    if session.get_bind().dialect.name != "postgresql" or not keys:
        return  # SQLite writers are serialised already
    # One statement for the whole batch (one round trip, not one per key). PostgreSQL
    # evaluates a volatile function of the select list after ORDER BY, so the locks are
    # taken in the order of the keys, as one per statement in sorted order would be.
    await session.execute(LOCK_KEYS, {"keys": sorted(set(keys))})


LOCK_KEYS = text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
    " FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
)


async def get_idempotency_record(*, session: AsyncSession, key: str) -> IdempotencyRecord | None:
    return await session.get(IdempotencyRecord, key)


async def iter_leads(*, session: AsyncSession) -> AsyncIterator[tuple[Lead, list[Enquiry]]]:
    """Every lead, oldest first, with its later enquiries."""
    result = await session.stream_scalars(select(Lead).order_by(col(Lead.created_at), col(Lead.id)))
    async for lead in result:
        enquiries = (
            await session.scalars(
                select(Enquiry)
                .where(col(Enquiry.lead_id) == lead.id)
                .order_by(col(Enquiry.created_at))
            )
        ).all()
        yield lead, list(enquiries)


async def get_lead(*, session: AsyncSession, lead_id: uuid.UUID) -> Lead | None:
    return await session.get(Lead, lead_id)


async def get_lead_by_receipt(*, session: AsyncSession, receipt_id: uuid.UUID) -> Lead | None:
    """The lead whose first submission got this receipt."""
    query = select(Lead).where(col(Lead.receipt_id) == receipt_id)
    return (await session.scalars(query)).first()


async def mark_not_spam(*, session: AsyncSession, lead: Lead, now: datetime) -> None:
    """Staff say a flagged lead is real; why it was flagged stays on record."""
    lead.spam = False
    lead.spam_reason = f"released; was: {lead.spam_reason}"[:200]
    lead.updated_at = now


async def delete_expired_idempotency_keys(*, session: AsyncSession, before: datetime) -> int:
    """Keys are answered for 24 hours; after that they are only clutter."""
    result = await session.execute(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < before)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
