"""The lead page's forms: status, assignment, notes, resend, merge, undo merge, and consent
withdrawn. Each is a POST carrying the session's ``csrf_token``, runs the staff use case in
one transaction,
and answers 303 back to the lead page with a short confirmation (post/redirect/get).

Status and assignment forms carry the ``version`` the page showed: if the lead has changed
since, nothing is overwritten and the page says someone else changed it. A form the use
case refuses (a note too long, a disabled assignee) shows the page again with the error
beside its field and what was typed kept."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.errors import (
    FieldError,
    InvalidSubmission,
    LeadNotMerged,
    MessageStillPending,
    PreconditionFailed,
    StaffLeadNotFound,
)
from leads.services import Services, services_of
from leads.staff.access import Actor, require_form_actor
from leads.staff.changes import change_lead, read_change
from leads.staff.consent import withdraw_consent
from leads.staff.merging import merge_lead, unmerge_lead
from leads.staff.notes import add_note, read_note
from leads.staff.pagekit import staff_redirect
from leads.staff.pages.lead import lead_view, not_found_page, show_lead
from leads.staff.resend import resend_message
from leads.staff.views import existing_lead
from leads.web.bodies import read_form_fields


def lead_url(lead_id: uuid.UUID | str, done: str | None = None) -> str:
    return f"/staff/leads/{lead_id}" + (f"?done={done}" if done else "")


def _text(fields: dict[str, object], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _if_match(fields: dict[str, object]) -> str:
    """The version the page showed, as an If-Match. A form without one is treated as out
    of date: it could otherwise overwrite a change it never saw."""
    version = _text(fields, "version").strip()
    return f'"{version}"' if version.isdigit() else '"stale"'


async def _act(
    request: Request,
    run: Callable[[Any, Actor, Services, dict[str, object]], Awaitable[uuid.UUID]],
    done: str,
    kept: tuple[str, ...] = (),
) -> Response:
    """Read the form and check its token, run ``run`` in one transaction, and answer: 303
    to the lead ``run`` returns, or the page again with the use case's field errors."""
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    actor = await require_form_actor(request, fields)
    lead_id: uuid.UUID = request.path_params["lead_id"]
    try:
        async with services.database.writing() as session:
            shown = await run(session, actor, services, fields)
    except StaffLeadNotFound:
        return await not_found_page(request, actor)
    except PreconditionFailed:
        return staff_redirect(lead_url(lead_id, "stale"))
    except MessageStillPending:
        return staff_redirect(lead_url(lead_id, "pending"))
    except LeadNotMerged:
        return staff_redirect(lead_url(lead_id, "not_merged"))
    except InvalidSubmission as exc:
        return await _refused(request, actor, lead_id, exc.by_field(), fields, kept)
    if services.dispatcher is not None:
        services.dispatcher.wake()  # a resend from this process goes now, not at the next poll
    return staff_redirect(lead_url(shown, done))


async def _refused(
    request: Request,
    actor: Actor,
    lead_id: uuid.UUID,
    errors: dict[str, FieldError],
    fields: dict[str, object],
    kept: tuple[str, ...],
) -> Response:
    services = services_of(request)
    async with services.database.reading() as session:
        lead = await existing_lead(session=session, lead_id=lead_id)
        typed = {name: _text(fields, name) for name in kept}
        context = await lead_view(
            request, session, lead=lead, actor=actor, errors=errors, typed=typed
        )
    return await show_lead(request, context, actor, status_code=422)


def _address(request: Request, services: Services) -> str | None:
    return services.defences.client_ip(request)


async def set_status(request: Request) -> Response:
    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        lead = await change_lead(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            change=read_change({"status": _text(fields, "status")}),
            now=services.now(),
            if_match=_if_match(fields),
            address=_address(request, services),
        )
        return lead.id

    return await _act(request, run, "status")


async def assign(request: Request) -> Response:
    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        chosen = _text(fields, "assigned_to").strip()
        lead = await change_lead(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            change=read_change({"assigned_to": chosen or None}),
            now=services.now(),
            if_match=_if_match(fields),
            address=_address(request, services),
        )
        return lead.id

    return await _act(request, run, "assigned")


async def note(request: Request) -> Response:
    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        event = await add_note(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            text=read_note(fields.get("text")),
            now=services.now(),
            address=_address(request, services),
        )
        return event.lead_id

    return await _act(request, run, "note", kept=("text",))


async def resend(request: Request) -> Response:
    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        await resend_message(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            message_id=request.path_params["message_id"],
            now=services.now(),
            address=_address(request, services),
        )
        lead_id: uuid.UUID = request.path_params["lead_id"]
        return lead_id

    return await _act(request, run, "resent")


def _lead_field(fields: dict[str, object], name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(_text(fields, name))
    except ValueError:
        return None


async def merge(request: Request) -> Response:
    """Fold this lead into the one named by ``into``; the page shown next is that one."""

    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        into = _lead_field(fields, "into")
        if into is None:
            raise InvalidSubmission([FieldError("into", "invalid_id", "Choose a lead.")])
        lead = await merge_lead(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            into=into,
            now=services.now(),
            address=_address(request, services),
        )
        assert lead.merged_into is not None
        return lead.merged_into

    return await _act(request, run, "merged")


async def unmerge(request: Request) -> Response:
    """Undo this lead's merge; back to the page the button was on (``back``)."""

    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        lead = await unmerge_lead(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            now=services.now(),
            address=_address(request, services),
        )
        return _lead_field(fields, "back") or lead.id

    return await _act(request, run, "unmerged")


async def withdraw(request: Request) -> Response:
    """The person asked the clinic to stop: recorded, and automatic emails to them stop."""

    async def run(
        session: Any, actor: Actor, services: Services, fields: dict[str, object]
    ) -> uuid.UUID:
        lead = await withdraw_consent(
            session=session,
            actor=actor,
            lead_id=request.path_params["lead_id"],
            now=services.now(),
            address=_address(request, services),
        )
        return lead.id

    return await _act(request, run, "withdrawn")


LEAD = "/staff/leads/{lead_id:uuid}"
routes = [
    Route(f"{LEAD}/status", set_status, methods=["POST"]),
    Route(f"{LEAD}/assign", assign, methods=["POST"]),
    Route(f"{LEAD}/notes", note, methods=["POST"]),
    Route(f"{LEAD}/messages/{{message_id:uuid}}/resend", resend, methods=["POST"]),
    Route(f"{LEAD}/merge", merge, methods=["POST"]),
    Route(f"{LEAD}/unmerge", unmerge, methods=["POST"]),
    Route(f"{LEAD}/withdraw-consent", withdraw, methods=["POST"]),
]
