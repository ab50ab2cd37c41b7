"""The audit log: who did what, when, from which address. Append-only: this module only
ever inserts. An entry names a lead by its id and a member of staff by their sign-in name,
never a visitor's name, contact details or message."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from leads.core.vocabulary import AuditAction
from leads.storage.staff_tables import AuditEntry


async def record_audit(
    *,
    session: AsyncSession,
    actor: str,
    action: AuditAction,
    now: datetime,
    lead_id: uuid.UUID | None = None,
    address: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add one entry in the caller's transaction: it is committed with what it records."""
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action=action.value,
            lead_id=lead_id,
            address=address,
            detail=detail or {},
        )
    )


async def audit_entries(
    *,
    session: AsyncSession,
    actor: str | None = None,
    lead_id: uuid.UUID | None = None,
    action: str | None = None,
    before_id: int | None = None,
    limit: int | None = None,
) -> list[AuditEntry]:
    """Newest first, filtered by who, which lead and what."""
    query = select(AuditEntry).order_by(col(AuditEntry.id).desc())
    if actor:
        query = query.where(col(AuditEntry.actor) == actor)
    if lead_id:
        query = query.where(col(AuditEntry.lead_id) == lead_id)
    if action:
        query = query.where(col(AuditEntry.action) == action)
    if before_id is not None:
        query = query.where(col(AuditEntry.id) < before_id)
    if limit is not None:
        query = query.limit(limit)
    return list((await session.scalars(query)).all())


async def lead_viewers(
    *, session: AsyncSession, lead_id: uuid.UUID, limit: int
) -> list[tuple[str, datetime]]:
    """Who looked at a lead and when (its ``lead_viewed`` entries), newest first, as plain
    rows: a lead page shows them to admins on every view."""
    entries = AuditEntry.__table__.c  # type: ignore[attr-defined]
    connection = await session.connection()
    rows = await connection.execute(
        select(entries.actor, entries.at)
        .where(entries.lead_id == lead_id, entries.action == AuditAction.LEAD_VIEWED)
        .order_by(entries.id.desc())
        .limit(limit)
    )
    return [(actor, at) for actor, at in rows]


def entry_as_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "lead_id": str(entry.lead_id) if entry.lead_id else None,
        "address": entry.address,
        "detail": entry.detail,
    }


async def stream_entries(*, session: AsyncSession) -> AsyncIterator[AuditEntry]:
    """Every entry, oldest first."""
    result = await session.stream_scalars(select(AuditEntry).order_by(col(AuditEntry.id)))
    async for entry in result:
        yield entry


async def export_audit(*, session: AsyncSession, out: TextIO) -> int:
    """Every entry as JSON lines, oldest first; how many were written."""
    count = 0
    async for entry in stream_entries(session=session):
        out.write(json.dumps(entry_as_dict(entry), ensure_ascii=False) + "\n")
        count += 1
    return count
