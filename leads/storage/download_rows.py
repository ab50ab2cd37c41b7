"""The CSV download's rows (``leads.staff.download``): a list's page as plain rows with ids
and moments as the driver reads them, and the enquiry ids of the page's leads. A download
of every lead is bound by the server's CPU, so nothing here builds an object it does not
need."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, String, Uuid, bindparam, case, exists, func, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import OutboxStatus
from leads.storage.models import Enquiry
from leads.storage.staff_queries import ENQUIRIES, LEADS, OUTBOX, LeadQuery, Position, listed
from leads.storage.types import UTCDateTime

# The delivery states a download counts each lead's notifications in, in this order.
STATES = tuple(sorted(OutboxStatus))


async def list_lead_columns(
    *,
    session: AsyncSession,
    query: LeadQuery,
    after: Position | None,
    limit: int,
    columns: Sequence[str],
) -> list[Row[Any]]:
    """``staff_queries.list_leads``' page as plain rows, for the CSV download: ``columns``
    (Lead's attribute names, which must include ``created_at`` and ``id``; ids and moments as the
    driver reads them, see :func:`raw`), then whether the lead has enquiries, then how many
    of its notifications are in each of :data:`STATES`. No objects built, and one statement:
    the counts are subqueries on the outbox's lead index."""
    wanted = [raw(LEADS[name]) for name in columns]
    wanted.append(exists().where(ENQUIRIES.lead_id == LEADS.id))
    for state in STATES:  # (a condition on status would have SQLite seek the status index)
        counted = func.count(case((OUTBOX.status == state, 1)))
        wanted.append(select(counted).where(OUTBOX.lead_id == LEADS.id).scalar_subquery())
    connection = await session.connection()  # plain rows: no ORM loading
    return list((await connection.execute(listed(select(*wanted), query, after, limit))).all())


def raw(column: Any) -> Any:
    """An id or moment column as the driver reads it, without SQLAlchemy's conversion to
    ``uuid.UUID`` or an aware ``datetime`` (the download's largest cost): on SQLite the
    stored text (32 hex digits; "YYYY-MM-DD HH:MM:SS.ffffff" in UTC), on PostgreSQL
    asyncpg's own UUID and aware datetime. Other columns as they are."""
    if isinstance(column.type, (Uuid, UTCDateTime)):
        return type_coerce(column, String())
    return column


def _among(column: Any) -> Any:
    """``column IN (the raw lead ids of a page)``: they bind as they were read."""
    return type_coerce(column, Uuid(as_uuid=False)).in_(bindparam("ids", expanding=True))


async def enquiry_ids_of(
    *, session: AsyncSession, lead_ids: Collection[Any]
) -> dict[Any, list[Any]]:
    """Each lead's enquiry ids (its later submissions' receipts), oldest first, keyed and
    given raw (see :func:`raw`): ``lead_ids`` are raw ids from :func:`list_lead_columns`."""
    found: dict[Any, list[Any]] = {lead_id: [] for lead_id in lead_ids}
    if lead_ids:
        rows = await session.execute(
            select(raw(col(Enquiry.lead_id)), raw(col(Enquiry.id)))
            .where(_among(col(Enquiry.lead_id)))
            .order_by(col(Enquiry.created_at), col(Enquiry.id)),
            {"ids": list(lead_ids)},
        )
        for lead_id, enquiry_id in rows:
            found[lead_id].append(enquiry_id)
    return found
