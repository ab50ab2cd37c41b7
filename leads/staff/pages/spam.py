"""The spam folder, ``GET /staff/spam``: leads flagged as spam, newest first, a page at a
time, each with its first name, form, when it came and why it was flagged in plain words;
``POST /staff/spam/{id}/release`` ("Not spam") runs the release use case
(:func:`leads.staff.releasing.release_from_spam`): the lead is back among the new ones and
its held notification is sent. Nothing of what the sender wrote is shown here: a lead is
opened on its own page to read it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.errors import LeadNotInSpam, StaffLeadNotFound
from leads.services import services_of
from leads.staff.access import client_address, require_form_actor, require_page_actor
from leads.staff.listing import list_page
from leads.staff.pagekit import staff_redirect
from leads.staff.pages.frame import render_page
from leads.staff.pages.leads import first_name, form_title
from leads.staff.pages.wording import spam_reasons
from leads.staff.pages.words import local_time
from leads.staff.releasing import release_from_spam
from leads.storage.staff_queries import LeadQuery
from leads.web.bodies import read_form_fields

PAGE_SIZE = 25
NOTICES = {
    "released": "Moved out of spam. The clinic's notification is on its way.",
    "gone": "That lead is no longer in the spam folder.",
}


def _row(request: Request, item: dict[str, Any], zone: str) -> dict[str, Any]:
    return {
        "id": item["id"],
        "first_name": first_name(str(item.get("name") or "")) or "(no name)",
        "form": form_title(request, item["form"]),
        "when": local_time(datetime.fromisoformat(item["created_at"]), zone),
        "reasons": spam_reasons(item.get("spam_reason")),
    }


async def spam_folder(request: Request) -> Response:
    actor = await require_page_actor(request)
    services = services_of(request)
    cursor = request.query_params.get("cursor") or None
    async with services.database.reading() as session:
        page = await list_page(
            session=session, query=LeadQuery(spam=True), limit=PAGE_SIZE, cursor=cursor
        )
    zone = services.settings.timezone
    return await render_page(
        request,
        "staff/spam.html",
        {
            "rows": [_row(request, item, zone) for item in page.items],
            "next_cursor": page.next_cursor,
            "first_page": cursor is None,
            "notice": NOTICES.get(request.query_params.get("done", "")),
        },
        actor=actor,
        section="spam",
    )


async def release(request: Request) -> Response:
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    actor = await require_form_actor(request, fields)
    try:
        lead_id = uuid.UUID(request.path_params["lead_id"])
    except ValueError:
        return staff_redirect("/staff/spam?done=gone")
    try:
        async with services.database.writing() as session:
            await release_from_spam(
                session=session,
                settings=services.settings,
                forms=services.forms,
                actor=actor,
                lead_id=lead_id,
                now=services.now(),
                address=client_address(request),
            )
    except (LeadNotInSpam, StaffLeadNotFound):
        return staff_redirect("/staff/spam?done=gone")
    if services.dispatcher is not None:
        services.dispatcher.wake()
    return staff_redirect("/staff/spam?done=released")


routes = [
    Route("/staff/spam", spam_folder, methods=["GET"]),
    Route("/staff/spam/{lead_id}/release", release, methods=["POST"]),
]
