"""The audit log page, ``GET /staff/audit``, for admins only (staff get the 403 page):
entries newest first, a page at a time, filtered by person, lead and action with a GET
form (:func:`leads.staff.audit.audit_entries`). Each says when (LEADS_TIMEZONE), who, what
in plain words, which lead (a link) and from which address. The page only reads: the log
is append-only."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.core.vocabulary import AuditAction
from leads.services import services_of
from leads.staff.access import require_page_actor
from leads.staff.audit import audit_entries
from leads.staff.pages.frame import render_page
from leads.staff.pages.wording import action_choices, action_label, who
from leads.staff.pages.words import local_time
from leads.storage.staff_tables import AuditEntry

PAGE_SIZE = 50
MAX_FILTER_LENGTH = 320
ACTIONS = frozenset(action.value for action in AuditAction)


def actor_label(person: str) -> str:
    """What the person filter matches: a sign-in email is ``user:<email>``; a label given
    whole (``token:nightly``, ``cli``) is matched as it is."""
    person = person.strip()
    if "@" in person and ":" not in person:
        return f"user:{person.lower()}"
    return person


def _row(entry: AuditEntry, zone: str) -> dict[str, Any]:
    return {
        "when": local_time(entry.at, zone),
        "who": who(entry.actor),
        "what": action_label(entry.action),
        "lead_id": entry.lead_id,
        "address": entry.address or "",
    }


async def audit_log(request: Request) -> Response:
    actor = await require_page_actor(request, admin=True)
    services = services_of(request)
    params = request.query_params
    person = params.get("person", "")[:MAX_FILTER_LENGTH].strip()
    lead_text = params.get("lead", "")[:MAX_FILTER_LENGTH].strip()
    action = params.get("action", "")
    errors: dict[str, str] = {}
    lead_id: uuid.UUID | None = None
    if lead_text:
        try:
            lead_id = uuid.UUID(lead_text)
        except ValueError:
            errors["lead"] = "A lead id looks like 0b7e2c3a-… (copy it from the lead's address)."
    if action and action not in ACTIONS:
        errors["action"] = "Choose one of the actions in the list."
    before = params.get("before", "")
    before_id = int(before) if before.isascii() and before.isdigit() else None
    entries: list[AuditEntry] = []
    if not errors:
        async with services.database.reading() as session:
            entries = await audit_entries(
                session=session,
                actor=actor_label(person) if person else None,
                lead_id=lead_id,
                action=action or None,
                before_id=before_id,
                limit=PAGE_SIZE + 1,
            )
    more = len(entries) > PAGE_SIZE
    entries = entries[:PAGE_SIZE]
    filters = {k: v for k, v in (("person", person), ("lead", lead_text), ("action", action)) if v}
    older = "/staff/audit?" + urlencode({**filters, "before": entries[-1].id}) if more else None
    newest = "/staff/audit" + ("?" + urlencode(filters) if filters else "")
    return await render_page(
        request,
        "staff/audit.html",
        {
            "rows": [_row(entry, services.settings.timezone) for entry in entries],
            "person": person,
            "lead": lead_text,
            "action": action,
            "actions": action_choices(),
            "errors": errors,
            "older": older,
            "newest": newest if before_id is not None else None,
            "filtered": bool(filters),
            "timezone": services.settings.timezone,
        },
        actor=actor,
        section="audit",
        status_code=400 if errors else 200,
    )


routes = [Route("/staff/audit", audit_log, methods=["GET"])]
