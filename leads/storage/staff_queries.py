"""Data access for the staff side's lists and lead pages: plain async functions taking the
session by keyword. The filters arrive parsed (``leads.staff.listing`` reads them); this
module only turns them into SQL."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    bindparam,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from leads.core.vocabulary import LeadStatus
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.storage.overdue import overdue_condition
from leads.storage.staff_tables import LeadEvent, User

UNASSIGNED = "none"  # assigned_to=none: leads nobody is on


@dataclass(frozen=True, slots=True)
class LeadQuery:
    """What a list asks for, already checked. ``overdue_cutoff`` is set when the list
    filters on overdue: leads created at or before it are past their follow-up deadline."""

    status: LeadStatus | None = None
    form: str | None = None
    spam: bool = False
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    text: str | None = None  # lowercased
    phone_digits: str | None = None  # without leading zeros (a national trunk prefix)
    assigned_to: str | None = None  # a lowercased email, or UNASSIGNED
    overdue: bool | None = None
    overdue_cutoff: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last lead's (created_at, id), newest first."""

    created_at: datetime
    lead_id: uuid.UUID


def _conditions(query: LeadQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        col(Lead.merged_into).is_(None),
        # "=" rather than "IS": PostgreSQL seeks an index only on "=" (spam is never NULL).
        col(Lead.spam) == query.spam,
    ]
    if query.status is not None:
        where.append(col(Lead.status) == query.status)
    if query.form is not None:
        where.append(col(Lead.form) == query.form)
    if query.created_after is not None:
        where.append(col(Lead.created_at) >= query.created_after)
    if query.created_before is not None:
        where.append(col(Lead.created_at) < query.created_before)
    if query.text is not None:
        # lower(name) LIKE, not ILIKE: the same match (the text is lowercased already),
        # and PostgreSQL's ILIKE costs more per row of the scan a substring search is.
        matches = [
            func.lower(col(Lead.name)).like(f"%{_escaped(query.text)}%", escape="\\"),
            col(Lead.email_key).contains(query.text, autoescape=True),
        ]
        if query.phone_digits:
            matches.append(col(Lead.phone).contains(query.phone_digits, autoescape=True))
        where.append(or_(*matches))
    if query.assigned_to == UNASSIGNED:
        where.append(col(Lead.assigned_to).is_(None))
    elif query.assigned_to is not None:
        user = select(col(User.id)).where(col(User.email) == query.assigned_to).scalar_subquery()
        where.append(col(Lead.assigned_to) == user)
    if query.overdue is not None and query.overdue_cutoff is not None:
        overdue = overdue_condition(query.overdue_cutoff)
        where.append(overdue if query.overdue else not_(overdue))
    return where


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


LEADS = Lead.__table__.c  # type: ignore[attr-defined]
ENQUIRIES = Enquiry.__table__.c  # type: ignore[attr-defined]
OUTBOX = OutboxMessage.__table__.c  # type: ignore[attr-defined]
USERS = User.__table__.c  # type: ignore[attr-defined]
# What a timeline and the API show of a notification (not its claims and schedule).
MESSAGE_COLUMNS = (
    "id", "lead_id", "created_at", "kind", "channel", "target", "status", "attempts",
    "last_error", "delivered_at",
)  # fmt: skip


async def list_leads(
    *,
    session: AsyncSession,
    query: LeadQuery,
    after: Position | None,
    limit: int,
    columns: Sequence[str] | None = None,
) -> list[Row[Any]]:
    """Newest first, keyset-paginated on (created_at, id): a page starts after ``after``,
    so leads arriving meanwhile (newer than any page read so far) never shift the pages.

    Plain rows (no ORM objects: building them was most of a page's CPU) of ``columns``
    (Lead's attribute names; every column when None, which must include ``created_at`` and
    ``id``), then ``assignee`` (the assigned member of staff's email, or None) and
    ``has_enquiries`` (whether the lead has later submissions): one statement.

    The position is written ``created_at <= t AND (created_at < t OR id < i)`` rather than
    ``created_at < t OR (created_at = t AND id < i)``: the same rows, but the first term is
    a range both engines seek an index to, so a page deep in the list (or the CSV export's
    last) reads its own rows, not every newer lead again."""
    wanted = list(LEADS) if columns is None else [LEADS[name] for name in columns]
    assignee = select(USERS.email).where(USERS.id == LEADS.assigned_to).scalar_subquery()
    wanted.append(assignee.label("assignee"))
    wanted.append(exists().where(ENQUIRIES.lead_id == LEADS.id).label("has_enquiries"))
    connection = await session.connection()
    return list((await connection.execute(listed(select(*wanted), query, after, limit))).all())


def listed(statement: Select[Any], query: LeadQuery, after: Position | None, limit: int) -> Any:
    statement = statement.where(*_conditions(query))
    if after is not None:
        statement = statement.where(
            col(Lead.created_at) <= after.created_at,
            or_(col(Lead.created_at) < after.created_at, col(Lead.id) < after.lead_id),
        )
    return statement.order_by(col(Lead.created_at).desc(), col(Lead.id).desc()).limit(limit)


# Built once: a statement made per call (and an IN list of one bind per id) cost more
# than the SQL it runs. ``ids`` expands to the page's lead ids when executed.
ENQUIRIES_OF = (
    select(*ENQUIRIES)
    .where(ENQUIRIES.lead_id.in_(bindparam("ids", expanding=True)))
    .order_by(ENQUIRIES.created_at, ENQUIRIES.id)
)
MESSAGES_OF = (
    select(*(OUTBOX[name] for name in MESSAGE_COLUMNS))
    .where(OUTBOX.lead_id.in_(bindparam("ids", expanding=True)))
    .order_by(OUTBOX.created_at, OUTBOX.id)
)
ACTIVE_EMAILS = select(USERS.email).where(USERS.active == True).order_by(USERS.email)  # noqa: E712


async def enquiries_of(
    *, session: AsyncSession, lead_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    """Each lead's later submissions, oldest first, as plain rows of every enquiry column.
    The session is flushed first: a use case may have just added one."""
    found: dict[uuid.UUID, list[Row[Any]]] = {lead_id: [] for lead_id in lead_ids}
    if lead_ids:
        await session.flush()
        connection = await session.connection()
        for enquiry in await connection.execute(ENQUIRIES_OF, {"ids": list(lead_ids)}):
            found[enquiry.lead_id].append(enquiry)
    return found


async def messages_of(
    *, session: AsyncSession, lead_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[Row[Any]]]:
    """Each lead's notifications, oldest first, as plain rows of :data:`MESSAGE_COLUMNS`.
    The session is flushed first: a use case may have just queued one."""
    found: dict[uuid.UUID, list[Row[Any]]] = {lead_id: [] for lead_id in lead_ids}
    if lead_ids:
        await session.flush()
        connection = await session.connection()
        for message in await connection.execute(MESSAGES_OF, {"ids": list(lead_ids)}):
            if message.lead_id is not None:
                found[message.lead_id].append(message)
    return found


async def emails_of(
    *, session: AsyncSession, user_ids: Collection[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = [user_id for user_id in set(user_ids) if user_id is not None]
    if not wanted:
        return {}
    rows = await session.execute(
        select(col(User.id), col(User.email)).where(col(User.id).in_(wanted))
    )
    return {user_id: email for user_id, email in rows}


async def active_emails(*, session: AsyncSession) -> list[str]:
    """The emails of the staff accounts still active, in order: whom a lead can go to."""
    connection = await session.connection()
    return list((await connection.execute(ACTIVE_EMAILS)).scalars().all())


async def user_by_email(*, session: AsyncSession, email: str) -> User | None:
    found = await session.scalars(select(User).where(col(User.email) == email.lower()))
    return found.first()


async def events_of(*, session: AsyncSession, lead_id: uuid.UUID) -> list[LeadEvent]:
    rows = await session.scalars(
        select(LeadEvent).where(col(LeadEvent.lead_id) == lead_id).order_by(col(LeadEvent.at))
    )
    return list(rows.all())


async def related_of(
    *, session: AsyncSession, lead_id: uuid.UUID
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """The leads stored as possible duplicates of this one, and those merged into it, each
    oldest first: one statement, each half served by its partial index."""
    duplicates = select(LEADS.id, LEADS.created_at, literal(0).label("merged"))
    merged = select(LEADS.id, LEADS.created_at, literal(1).label("merged"))
    both = union_all(
        duplicates.where(LEADS.duplicate_of == lead_id),
        merged.where(LEADS.merged_into == lead_id),
    )
    rows = (await session.execute(both)).all()
    found: tuple[list[uuid.UUID], list[uuid.UUID]] = ([], [])
    for other, _at, is_merged in sorted(rows, key=lambda row: (row[1], row[0])):
        found[is_merged].append(other)
    return found


async def first_names_of(
    *, session: AsyncSession, lead_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, datetime]]:
    """Other leads a lead page names (its duplicates, merges): their name and arrival."""
    if not lead_ids:
        return {}
    connection = await session.connection()
    rows = await connection.execute(
        select(LEADS.id, LEADS.name, LEADS.created_at).where(LEADS.id.in_(list(lead_ids)))
    )
    return {lead_id: (name, created_at) for lead_id, name, created_at in rows}


async def merged_into_this(*, session: AsyncSession, lead_id: uuid.UUID) -> list[uuid.UUID]:
    """Leads folded into this one, oldest first."""
    rows = await session.scalars(
        select(col(Lead.id))
        .where(col(Lead.merged_into) == lead_id)
        .order_by(col(Lead.created_at), col(Lead.id))
    )
    return list(rows.all())


async def lead_for_update(*, session: AsyncSession, lead_id: uuid.UUID) -> Lead | None:
    """The lead, its row locked until the transaction ends (PostgreSQL; SQLite writers are
    serialised already), and read afresh."""
    found = await session.scalars(
        select(Lead)
        .where(col(Lead.id) == lead_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return found.first()
