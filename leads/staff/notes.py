"""Notes on a lead: what staff write down (a call back at five, the patient's preference).
The note's text goes on the lead's timeline only; the audit log records that a note was
added, never what it says."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import AuditAction, EventKind
from leads.errors import FieldError, InvalidSubmission, StaffLeadNotFound
from leads.staff.access import Actor
from leads.staff.audit import record_audit
from leads.staff.changes import add_event, touch
from leads.storage import staff_queries
from leads.storage.staff_tables import LeadEvent

MAX_NOTE_LENGTH = 5000
# Line breaks other than LF become LF, as the public form's message does.
LINE_BREAKS = ("\r\n", "\r", "\u0085", "\u2028", "\u2029")


def read_note(value: object) -> str:
    """The note's text, trimmed and NFC-normalised; controls (but tab and line breaks) and
    lone surrogates are refused, as the public form refuses them in a message."""
    if not isinstance(value, str):
        raise _invalid("invalid_type", "text is the note, as a string")
    for line_break in LINE_BREAKS:
        value = value.replace(line_break, "\n")
    if any(c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise _invalid("control_characters", "Please remove special control characters.")
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise _invalid("required", "Please write the note.")
    if len(text) > MAX_NOTE_LENGTH:
        raise _invalid("too_long", f"Please keep this to {MAX_NOTE_LENGTH} characters or fewer.")
    return text


def _invalid(code: str, message: str) -> InvalidSubmission:
    return InvalidSubmission([FieldError("text", code, message)])


async def add_note(
    *,
    session: AsyncSession,
    actor: Actor,
    lead_id: uuid.UUID,
    text: str,
    now: datetime,
    address: str | None = None,
) -> LeadEvent:
    """Add a note (``text`` from :func:`read_note`) to the lead's timeline."""
    lead = await staff_queries.lead_for_update(session=session, lead_id=lead_id)
    if lead is None:
        raise StaffLeadNotFound()
    event = add_event(session, lead=lead, kind=EventKind.NOTE, actor=actor, now=now, text=text)
    touch(lead, now)  # the lead's page shows its notes: its ETag changes with them
    await record_audit(
        session=session,
        actor=actor.label,
        action=AuditAction.NOTE_ADDED,
        now=now,
        lead_id=lead.id,
        address=address,
        detail={"note": str(event.id)},
    )
    return event
