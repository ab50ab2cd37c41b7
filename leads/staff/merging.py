"""Merging leads: staff fold a lead into another (the same person, enquiring twice in a way
intake could not join, e.g. a ``duplicate_of``). The merged lead keeps its own rows and
timeline; it only leaves the lists, and points at the lead it is part of now. Unmerging
undoes exactly that. Both leads' timelines record each step.

Merges are one level deep: a lead is merged into one that is not merged itself, and a lead
that others are merged into is not merged away (unmerge those first), so there are no
chains to follow."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind
from leads.errors import FieldError, InvalidSubmission, LeadNotMerged, StaffLeadNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage import staff_queries
from leads.storage.models import Lead


def read_target(body: Mapping[str, object]) -> uuid.UUID:
    """The ``into`` of a merge request."""
    unknown = [name for name in body if name != "into"]
    if unknown:
        raise InvalidSubmission(
            [FieldError(name, "unknown_field", "send only into") for name in unknown]
        )
    value = body.get("into")
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return uuid.UUID(value)
    except ValueError:
        raise _refused("invalid_id", "into is the id of the lead to merge this one into") from None


def _refused(code: str, message: str) -> InvalidSubmission:
    return InvalidSubmission([FieldError("into", code, message)])


async def _locked(session: AsyncSession, lead_id: uuid.UUID) -> Lead | None:
    return await staff_queries.lead_for_update(session=session, lead_id=lead_id)


async def merge_lead(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    into: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """Fold lead ``lead_id`` into lead ``into``; the merged lead as it now is."""
    # Locked in id order, so two merges of the same pair cannot deadlock.
    locked = {i: await _locked(session, i) for i in sorted({lead_id, into})}
    lead = locked[lead_id]
    if lead is None:
        raise StaffLeadNotFound()
    target = locked[into]
    if target is None:
        raise _refused("not_found", "there is no lead with this id")
    if target.id == lead.id:
        raise _refused("same_lead", "a lead cannot be merged into itself")
    if lead.merged_into is not None:
        raise _refused("already_merged", "this lead is merged already; unmerge it first")
    if target.merged_into is not None:
        raise _refused("target_merged", "that lead is merged into another; merge into that one")
    if await staff_queries.merged_into_this(session=session, lead_id=lead.id):
        raise _refused("has_merged_leads", "other leads are merged into this one; unmerge them")
    lead.merged_into = target.id
    _record_both(session, actor, lead, target, EventKind.MERGED, now)
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.LEADS_MERGED,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"into": str(target.id)},
    )
    return lead


async def unmerge_lead(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """Undo a merge: the lead is back in the lists on its own."""
    lead = await _locked(session, lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    if lead.merged_into is None:
        raise LeadNotMerged()
    target = await _locked(session, lead.merged_into)
    lead.merged_into = None
    if target is not None:
        _record_both(session, actor, lead, target, EventKind.UNMERGED, now)
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.LEADS_UNMERGED,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"from": str(target.id) if target else None},
    )
    return lead


def _record_both(
    session: AsyncSession, actor: Actor, lead: Lead, target: Lead, kind: EventKind, now: datetime
) -> None:
    """The same step on both timelines: ``other`` is the other lead, ``into`` the one kept."""
    for one, other in ((lead, target), (target, lead)):
        detail = {"other": str(other.id), "into": str(target.id)}
        add_event(session, lead=one, kind=kind, actor=actor, now=now, detail=detail)
        touch(one, now)
