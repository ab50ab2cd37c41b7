"""The lead page, ``GET /staff/leads/{id}`` (the link notification emails carry): how to
reach the person (tel:, sms:, mailto:), their enquiries, the timeline, and the forms that
work the lead (``lead_actions.py`` answers them). Viewing is recorded in the audit log as
``lead_viewed``; admins see who has viewed the lead. An unknown id gets the staff 404 page.

The page's forms carry the lead's version (its ETag): a form sent from a page someone else
has changed since is refused, and the page says so and shows the lead as it now is."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.core.quiet import QuietHours
from leads.core.vocabulary import LeadStatus
from leads.errors import FieldError, StaffLeadNotFound
from leads.services import services_of
from leads.settings.display import masked_number
from leads.staff.access import Actor, require_page_actor
from leads.staff.audit import lead_viewers
from leads.staff.banner import DeliveryBanner, delivery_banner
from leads.staff.pages.frame import render_page
from leads.staff.pages.leads import first_name, form_title
from leads.staff.pages.wording import channel_label, kind_label, who
from leads.staff.pages.words import (
    CONTACT_LABELS,
    STATUS_LABELS,
    local_time,
    status_label,
    waited,
)
from leads.staff.views import lead_detail, viewed_lead
from leads.storage.models import Lead
from leads.storage.staff_queries import active_emails, first_names_of

NOTICES = {
    "status": "Status saved.",
    "assigned": "Assignment saved.",
    "note": "Note added.",
    "resent": "The notification is queued to be sent again.",
    "merged": "Merged. Both leads' timelines record it.",
    "unmerged": "Merge undone. The lead is back in the list on its own.",
    "stale": "Someone else changed this lead; here it is now. Please check, then try again.",
    "pending": "That notification is still on its way; it can be sent again once it has "
    "been delivered or has failed.",
    "not_merged": "That lead is not merged any more.",
    "withdrawn": "Consent withdrawn: no more automatic emails to this person.",
}
VIEWERS_SHOWN = 20


async def lead_context(
    request: Request,
    session: AsyncSession,
    *,
    lead: Lead,
    actor: Actor,
    now: datetime,
) -> dict[str, Any]:
    """What the lead page shows, read in ``session``."""
    settings = services_of(request).settings
    zone = settings.timezone
    record = await lead_detail(session=session, lead=lead)
    for entry in record["timeline"]:
        entry["when"] = local_time(entry["at"], zone, now)
        entry["who"] = who(entry["actor"])
    others = {
        *record["possible_duplicates"],
        *record["merged_leads"],
        *(i for i in (record["duplicate_of"], record["merged_into"]) if i),
    }
    found = await first_names_of(session=session, lead_ids=[uuid.UUID(i) for i in others])
    neighbours: dict[str, Any] = {other: None for other in others}
    for other_id, (name, created_at) in found.items():
        neighbours[str(other_id)] = {
            "id": str(other_id),
            "first_name": first_name(name),
            "received": local_time(created_at, zone, now),
        }
    users = await active_emails(session=session)
    viewers = []
    if actor.is_admin:
        entries = await lead_viewers(session=session, lead_id=lead.id, limit=VIEWERS_SHOWN)
        viewers = [{"who": who(actor), "when": local_time(at, zone, now)} for actor, at in entries]
    cutoff = settings.opening().overdue_cutoff(now, settings.follow_up_hours)
    overdue = lead.status == LeadStatus.NEW and not lead.spam and lead.created_at <= cutoff
    if lead.first_response_at is None:
        wait = f"Waiting {waited(now - lead.created_at)}"
    else:
        wait = f"Answered after {waited(lead.first_response_at - lead.created_at)}"
    return {
        "lead": record,
        "first_name": first_name(lead.name),
        "form_title": form_title(request, lead.form),
        "received": local_time(lead.created_at, zone, now),
        "wait": wait,
        "overdue": overdue,
        "status_label": status_label(lead.status),
        "statuses": [(s.value, label) for s, label in STATUS_LABELS.items()],
        "preferred": CONTACT_LABELS.get(lead.preferred_contact or "", None),
        "users": users,
        "neighbours": neighbours,
        "viewers": viewers,
        "status_words": status_label,
        "kind_label": kind_label,
        "channel_label": channel_label,
        "text_held": text_held(settings.sms_quiet_hours, zone, now),
        "number_shown": masked_number,
        "withdrawn": (
            {
                "when": local_time(lead.consent_withdrawn_at, zone, now),
                "who": who(lead.consent_withdrawn_by or ""),
            }
            if lead.consent_withdrawn_at
            else None
        ),
    }


def text_held(quiet_hours: str | None, zone: str, now: datetime) -> str | None:
    """What a pending text says during quiet hours: it goes when they end, not before."""
    quiet = QuietHours.parse(quiet_hours, zone)
    until = quiet.held_until(now) if quiet else None
    if until is None:
        return None
    return f"Text held until {until.astimezone(ZoneInfo(zone)):%H:%M} (quiet hours)"


async def lead_view(
    request: Request,
    session: AsyncSession,
    *,
    lead: Lead,
    actor: Actor,
    notice: str | None = None,
    errors: dict[str, FieldError] | None = None,
    typed: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The page's context, with a confirmation or warning (a code of :data:`NOTICES`, never
    text from the request), field errors, and what was typed into the forms."""
    now = services_of(request).now()
    context = await lead_context(request, session, lead=lead, actor=actor, now=now)
    context.update(notice=NOTICES.get(notice or ""), errors=errors or {}, typed=typed or {})
    return context


async def show_lead(
    request: Request,
    context: dict[str, Any],
    actor: Actor,
    status_code: int = 200,
    banner: DeliveryBanner | Literal[False] | None = False,
) -> Response:
    """The page; ``banner`` as :func:`render_page` takes it (read there unless given)."""
    return await render_page(
        request,
        "staff/lead.html",
        context,
        actor=actor,
        section="leads",
        status_code=status_code,
        banner=banner,
    )


async def not_found_page(request: Request, actor: Actor) -> Response:
    return await render_page(
        request, "staff/404.html", {}, actor=actor, section="leads", status_code=404
    )


async def lead_page(request: Request) -> Response:
    actor = await require_page_actor(request)
    services = services_of(request)
    lead_id: uuid.UUID = request.path_params["lead_id"]
    try:
        # The look is recorded in a short write; the page is read after it, outside the
        # write (on SQLite one writer at a time: visitors' submissions wait for a write).
        async with services.database.writing() as session:
            lead = await viewed_lead(
                session=session,
                actor=actor,
                lead_id=lead_id,
                now=services.now(),
                address=services.defences.client_ip(request),
            )
        notice = request.query_params.get("done")
        async with services.database.reading() as session:
            context = await lead_view(request, session, lead=lead, actor=actor, notice=notice)
            banner = await delivery_banner(session=session, now=services.now())
    except StaffLeadNotFound:
        return await not_found_page(request, actor)
    return await show_lead(request, context, actor, banner=banner)


routes = [Route("/staff/leads/{lead_id:uuid}", lead_page, methods=["GET"])]
