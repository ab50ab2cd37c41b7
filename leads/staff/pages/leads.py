"""The lead list, ``GET /staff``: leads still waiting for a first answer ("Waiting", the
default) or all of them, newest first, with the list's filters and search as a GET form
and the list use case's cursor behind "Older leads". Overdue leads (still new, past the
follow-up deadline counted in opening hours) carry a text badge, not only a colour."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.core.vocabulary import LeadStatus
from leads.errors import FieldError, InvalidSubmission
from leads.services import services_of
from leads.staff import listing
from leads.staff.access import require_page_actor
from leads.staff.banner import delivery_banner
from leads.staff.pagekit import staff_redirect
from leads.staff.pages.frame import render_page
from leads.staff.pages.words import STATUS_LABELS, local_time, status_label, waited
from leads.storage.staff_queries import active_emails

FILTERS = ("status", "form", "assigned_to", "overdue", "q")
VIEWS = ("waiting", "all")
LIST_STATUSES = [s for s in LeadStatus if s != LeadStatus.SPAM]  # spam has its own folder


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    first_name: str
    form: str
    received: str
    wait: str
    status: str
    status_label: str
    assigned_to: str | None
    overdue: bool


def first_name(name: str) -> str:
    return name.split()[0] if name.split() else name


def form_title(request: Request, slug: str) -> str:
    """The form's title, as the visitor saw it; its slug if it is no longer defined."""
    form = services_of(request).site.forms.forms.get(slug)
    return form.title if form is not None else slug


# What a row of the list shows: the columns read for it (staff_queries.list_leads adds
# the assignee's email).
ROW_COLUMNS = ("id", "created_at", "name", "form", "status", "spam", "first_response_at")


def _row(lead: Any, *, now: datetime, cutoff: datetime, zone: str, form: str) -> Row:
    """A list row from a plain row of :data:`ROW_COLUMNS`."""
    created: datetime = lead.created_at
    answered: datetime | None = lead.first_response_at
    if answered is None:
        wait = f"waiting {waited(now - created)}"
    else:
        wait = f"answered after {waited(answered - created)}"
    return Row(
        id=str(lead.id),
        first_name=first_name(lead.name),
        form=form,
        received=local_time(created, zone, now),
        wait=wait,
        status=lead.status,
        status_label=status_label(lead.status),
        assigned_to=lead.assignee,
        overdue=lead.status == LeadStatus.NEW and not lead.spam and created <= cutoff,
    )


def _chosen(request: Request) -> tuple[str, dict[str, str]]:
    """The view and the filters the form sent; an empty field (its "any" choice) is none."""
    params = request.query_params
    view = params.get("view", "waiting")
    view = view if view in VIEWS else "waiting"
    chosen = {name: value for name in FILTERS if (value := params.get(name, "").strip())}
    return view, chosen


async def lead_list(request: Request) -> Response:
    actor = await require_page_actor(request)
    services = services_of(request)
    settings = services.settings
    now = services.now()
    view, chosen = _chosen(request)
    asked = dict(chosen)
    if view == "waiting":
        asked["status"] = LeadStatus.NEW
    cursor = request.query_params.get("cursor") or None
    errors: dict[str, FieldError] = {}
    try:
        query = listing.read_filters(asked, settings, now)
        if cursor:
            listing.decode_cursor(cursor)
    except InvalidSubmission as exc:
        errors = exc.by_field()
        query = listing.read_filters(
            {"status": LeadStatus.NEW} if view == "waiting" else {}, settings, now
        )
        cursor = None
    cutoff = settings.opening().overdue_cutoff(now, settings.follow_up_hours)
    async with services.database.reading() as session:
        leads, next_cursor = await listing.list_rows(
            session=session, query=query, cursor=cursor, columns=ROW_COLUMNS
        )
        users = await active_emails(session=session)
        banner = await delivery_banner(session=session, now=now)
    titles = {slug: form.title for slug, form in services.site.forms.forms.items()}
    rows = [
        _row(
            lead,
            now=now,
            cutoff=cutoff,
            zone=settings.timezone,
            form=titles.get(lead.form, lead.form),
        )
        for lead in leads
    ]
    older = None
    if next_cursor is not None:
        older = "/staff?" + urlencode({"view": view, **chosen, "cursor": next_cursor})
    context = {
        "view": view,
        "chosen": chosen,
        "rows": rows,
        "older": older,
        "errors": errors,
        "statuses": [(s.value, STATUS_LABELS[s]) for s in LIST_STATUSES],
        "forms": sorted(services.site.forms.forms.values(), key=lambda f: f.title),
        "users": users,
        "follow_up_hours": settings.follow_up_hours,
        "tabs": {name: "/staff?" + urlencode({"view": name, **chosen}) for name in VIEWS},
        "paged": bool(request.query_params.get("cursor")),
    }
    status = 422 if errors else 200
    return await render_page(
        request,
        "staff/leads.html",
        context,
        actor=actor,
        section="leads",
        status_code=status,
        banner=banner,
    )


async def overdue_list(request: Request) -> Response:
    """``/staff/leads``, where the daily digest's "and N more" points: the overdue leads."""
    return staff_redirect("/staff?overdue=true")


routes = [
    Route("/staff", lead_list, methods=["GET"]),
    Route("/staff/leads", overdue_list, methods=["GET"]),
]
