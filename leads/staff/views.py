"""What staff see of a lead, as JSON: the fields of `leads export` (its row builder) plus the
follow-up (assignee, first response, merge, version), and for one lead its timeline.

The timeline weaves three tables together, oldest first: the lead's submissions (kind
``enquiry``), its notifications with their delivery state (kind ``notification``), and what
staff did (``LeadEvent`` rows: status, assignment, note, released, resent, merged,
unmerged). Every entry has ``at``, ``kind`` and ``actor``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction
from leads.errors import StaffLeadNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.export import fields, lead_record
from leads.storage import staff_queries
from leads.storage.models import Lead
from leads.storage.staff_tables import LeadEvent

VISITOR = "visitor"  # who sent an enquiry
SYSTEM = "system"  # who sends notifications


def etag(lead: Lead) -> str:
    """The lead's version as a strong entity tag."""
    return f'"{lead.version}"'


def lead_summary(
    lead: Lead | Row[Any],
    enquiries: Sequence[Row[Any]],
    messages: Sequence[Row[Any]],
    assignee: str | None,
) -> dict[str, Any]:
    """``lead`` (an object, or a list's plain row: they read alike) as the API shows it;
    ``assignee`` is the email of the member of staff it is assigned to."""
    f = fields(lead)
    record = lead_record(f, enquiries, messages)
    record["assigned_to"] = assignee if f["assigned_to"] else None
    record["first_response_at"] = _iso(f["first_response_at"])
    record["merged_into"] = str(f["merged_into"]) if f["merged_into"] else None
    record["version"] = f["version"]
    return record


async def lead_summaries(
    *, session: AsyncSession, leads: Sequence[Row[Any]]
) -> list[dict[str, Any]]:
    """A page of leads (rows of ``staff_queries.list_leads``, every column) in one more
    query, two when some have later submissions, whatever the page's length."""
    ids = [lead.id for lead in leads]
    asked = [lead.id for lead in leads if lead.has_enquiries]
    enquiries = await staff_queries.enquiries_of(session=session, lead_ids=asked)
    messages = await staff_queries.messages_of(session=session, lead_ids=ids)
    return [
        lead_summary(lead, enquiries.get(lead.id, ()), messages[lead.id], lead.assignee)
        for lead in leads
    ]


async def lead_detail(*, session: AsyncSession, lead: Lead) -> dict[str, Any]:
    """One lead with its timeline, possible duplicates and the leads merged into it."""
    enquiries = (await staff_queries.enquiries_of(session=session, lead_ids=[lead.id]))[lead.id]
    messages = (await staff_queries.messages_of(session=session, lead_ids=[lead.id]))[lead.id]
    events = await staff_queries.events_of(session=session, lead_id=lead.id)
    emails = await staff_queries.emails_of(session=session, user_ids=[lead.assigned_to])
    assignee = emails.get(lead.assigned_to) if lead.assigned_to else None
    record = lead_summary(lead, enquiries, messages, assignee)
    duplicates, merged = await staff_queries.related_of(session=session, lead_id=lead.id)
    record["possible_duplicates"] = [str(i) for i in duplicates]
    record["merged_leads"] = [str(i) for i in merged]
    record["timeline"] = timeline(lead, enquiries, messages, events)
    return record


async def viewed_lead(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    now: datetime,
    address: str | None = None,
) -> Lead:
    """The lead someone is looking at, their look recorded in the audit log (``lead_viewed``)
    in this transaction."""
    lead = await existing_lead(session=session, lead_id=lead_id)
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.LEAD_VIEWED,
        now=now,
        lead_id=lead.id,
        address=address,
    )
    return lead


async def existing_lead(*, session: AsyncSession, lead_id: uuid.UUID) -> Lead:
    lead = await session.get(Lead, lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    return lead


def timeline(
    lead: Lead,
    enquiries: Sequence[Row[Any]],
    messages: Sequence[Row[Any]],
    events: Sequence[LeadEvent],
) -> list[dict[str, Any]]:
    entries: list[tuple[datetime, dict[str, Any]]] = [(lead.created_at, _first_enquiry(lead))]
    entries += [(e.created_at, _enquiry(e)) for e in enquiries]
    entries += [(m.created_at, _notification(m)) for m in messages]
    entries += [(e.at, event_entry(e)) for e in events]
    # Stable: at the same instant an enquiry comes before its notifications, and events
    # keep the order they were written in.
    return [entry for _at, entry in sorted(entries, key=lambda pair: pair[0])]


def _first_enquiry(lead: Lead) -> dict[str, Any]:
    return {
        "at": _iso(lead.created_at),
        "kind": "enquiry",
        "actor": VISITOR,
        "id": str(lead.receipt_id),
        "form": lead.form,
        "name": lead.name,
        "email": lead.email,
        "phone": lead.phone,
        "message": lead.message,
        "interest": lead.interest,
    }


def _enquiry(enquiry: Row[Any]) -> dict[str, Any]:
    return {
        "at": _iso(enquiry.created_at),
        "kind": "enquiry",
        "actor": VISITOR,
        "id": str(enquiry.id),
        "form": enquiry.form,
        "name": enquiry.name,
        "email": enquiry.email,
        "phone": enquiry.phone,
        "message": enquiry.message,
        "interest": enquiry.interest,
    }


def _notification(message: Row[Any]) -> dict[str, Any]:
    return {
        "at": _iso(message.created_at),
        "kind": "notification",
        "actor": SYSTEM,
        "id": str(message.id),
        "channel": message.channel,
        "message_kind": message.kind,
        "status": message.status,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "delivered_at": _iso(message.delivered_at),
    }


def event_entry(event: LeadEvent) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "at": _iso(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "id": str(event.id),
        **event.detail,
    }
    if event.text is not None:
        entry["text"] = event.text
    return entry


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
