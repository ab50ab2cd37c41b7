"""Changing a lead's follow-up: its status and who is on it.

One transaction (the caller's session) holds the change, the version bump, its timeline
entries and its audit entry. ``If-Match`` protects against overwriting a change someone
made since the page was loaded: a stale version is refused with 412. The first status
change away from ``new`` stamps ``first_response_at``, where the speed-to-lead clock stops;
later changes never move it. ``spam`` puts the lead in the spam folder, and only a release
takes it out again (:mod:`leads.staff.releasing`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind, LeadStatus
from leads.errors import FieldError, InvalidSubmission, PreconditionFailed, StaffLeadNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.storage import staff_queries
from leads.storage.models import Lead
from leads.storage.staff_tables import LeadEvent

CHANGEABLE = ("status", "assigned_to")
STATUSES = frozenset(s.value for s in LeadStatus)
MARKED_BY_STAFF = "marked by staff"

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class LeadChange:
    """What a PATCH asks for; a field left out is ``_UNSET``, ``assigned_to=None`` unassigns."""

    status: LeadStatus | None = None
    assigned_to: str | None = _UNSET  # a lowercased email, or None

    @property
    def assigns(self) -> bool:
        return self.assigned_to is not _UNSET


def read_change(body: Mapping[str, object]) -> LeadChange:
    """The change a JSON body asks for, or :class:`InvalidSubmission` naming every bad field."""
    errors = [
        FieldError(name, "unknown_field", f"only {' and '.join(CHANGEABLE)} can be changed")
        for name in body
        if name not in CHANGEABLE
    ]
    status: LeadStatus | None = None
    if "status" in body:
        value = body["status"]
        if isinstance(value, str) and value in STATUSES:
            status = LeadStatus(value)
        else:
            errors.append(
                FieldError("status", "invalid_choice", "status is one of " + ", ".join(LeadStatus))
            )
    assignee: str | None = _UNSET
    if "assigned_to" in body:
        value = body["assigned_to"]
        if value is None or (isinstance(value, str) and "@" in value):
            assignee = value.strip().lower() if isinstance(value, str) else None
        else:
            errors.append(
                FieldError("assigned_to", "invalid_email", "assigned_to is a user's email or null")
            )
    if errors:
        raise InvalidSubmission(errors)
    return LeadChange(status=status, assigned_to=assignee)


def parse_lead_id(text: str) -> uuid.UUID:
    """A lead id from a URL; anything else is a lead that is not there."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise StaffLeadNotFound() from None


def check_version(lead: Lead, if_match: str | None) -> None:
    """Refuse with 412 unless ``If-Match`` (when sent) names the lead's current version."""
    if if_match is None:
        return
    tags = [tag.strip().removeprefix("W/") for tag in if_match.split(",")]
    if "*" not in tags and f'"{lead.version}"' not in tags:
        raise PreconditionFailed()


def add_event(
    session: AsyncSession,
    *,
    lead: Lead,
    kind: EventKind,
    actor: Actor | None,
    now: datetime,
    detail: dict[str, Any] | None = None,
    text: str | None = None,
) -> LeadEvent:
    event = LeadEvent(
        lead_id=lead.id,
        at=now,
        kind=kind.value,
        user_id=actor.user_id if actor else None,
        actor=actor.label if actor else "system",
        detail=detail or {},
        text=text,
    )
    session.add(event)
    return event


def touch(lead: Lead, now: datetime) -> None:
    """The lead has changed: a new version (and so a new ETag)."""
    lead.version += 1
    lead.updated_at = now


async def change_lead(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    change: LeadChange,
    now: datetime,
    if_match: str | None = None,
    address: str | None = None,
) -> Lead:
    """Apply ``change``; the lead as it now is. Nothing is written if nothing changes."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    check_version(lead, if_match)
    audit: dict[str, Any] = {}
    if change.status is not None and change.status != lead.status:
        if lead.spam and change.status != LeadStatus.SPAM:
            raise InvalidSubmission(
                [FieldError("status", "in_spam_folder", "release the lead from spam first")]
            )
        previous = lead.status
        _set_status(lead, change.status, now)
        detail = {"from": previous, "to": change.status.value}
        add_event(session, lead=lead, kind=EventKind.STATUS, actor=actor, now=now, detail=detail)
        audit["status"] = detail
    if change.assigns:
        assigned = await _assignee(session, change.assigned_to)
        if assigned != lead.assigned_to:
            emails = await staff_queries.emails_of(
                session=session, user_ids=[lead.assigned_to, assigned]
            )
            moved: dict[str, Any] = {
                "from": emails.get(lead.assigned_to) if lead.assigned_to else None,
                "to": emails.get(assigned) if assigned else None,
            }
            add_event(
                session, lead=lead, kind=EventKind.ASSIGNMENT, actor=actor, now=now, detail=moved
            )
            audit["assigned_to"] = {  # ids: the audit log names staff by their label only
                "from": str(lead.assigned_to) if lead.assigned_to else None,
                "to": str(assigned) if assigned else None,
            }
            lead.assigned_to = assigned
    if audit:
        touch(lead, now)
        await record_audit(
            session=session,
            actor=actor.label,
            action=AuditAction.LEAD_CHANGED,
            now=now,
            lead_id=lead.id,
            address=address,
            detail=audit,
        )
    return lead


def _set_status(lead: Lead, status: LeadStatus, now: datetime) -> None:
    if lead.first_response_at is None and lead.status == LeadStatus.NEW:
        lead.first_response_at = now
    lead.status = status.value
    if status == LeadStatus.SPAM:
        lead.spam = True
        lead.spam_reason = MARKED_BY_STAFF


async def _assignee(session: AsyncSession, email: str | None) -> uuid.UUID | None:
    if email is None:
        return None
    user = await staff_queries.user_by_email(session=session, email=email)
    if user is None:
        raise InvalidSubmission(
            [FieldError("assigned_to", "unknown_user", "no member of staff has this email")]
        )
    if not user.active:
        raise InvalidSubmission(
            [FieldError("assigned_to", "inactive_user", "this account is disabled")]
        )
    return user.id
