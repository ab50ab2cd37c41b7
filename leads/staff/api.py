"""The staff API (``/api/staff/...``): a thin door onto the staff use cases. Each handler
finds its actor (an API token or a staff session), reads its input, runs one use case in one
transaction, and answers JSON; errors reach clients as application/problem+json.

Same origin only: the public API's CORS settings never cover these routes' credentials."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from leads.core.vocabulary import AuditAction
from leads.errors import StaffMessageNotFound
from leads.services import Services, services_of
from leads.staff import listing
from leads.staff.access import client_address, require_actor
from leads.staff.audit import record_audit
from leads.staff.changes import change_lead, parse_lead_id, read_change
from leads.staff.consent import withdraw_consent
from leads.staff.download import audit_filters, csv_chunks
from leads.staff.merging import merge_lead, read_target, unmerge_lead
from leads.staff.notes import add_note, read_note
from leads.staff.releasing import release_from_spam
from leads.staff.resend import resend_message
from leads.staff.views import etag, event_entry, existing_lead, lead_detail, viewed_lead
from leads.storage.models import Lead
from leads.web.bodies import read_json_object

NO_STORE = {"Cache-Control": "no-store"}  # personal data: never kept by a cache


def _lead_id(request: Request) -> uuid.UUID:
    return parse_lead_id(request.path_params["lead_id"])


async def _body(request: Request, services: Services) -> dict[str, object]:
    return await read_json_object(request, services.settings.max_body_bytes)


async def _lead_answer(session: AsyncSession, lead: Lead, status: int = 200) -> Response:
    """The lead as GET shows it, read in the transaction that changed it."""
    body = await lead_detail(session=session, lead=lead)
    return JSONResponse(body, status_code=status, headers={**NO_STORE, "ETag": etag(lead)})


def _wake(services: Services) -> None:
    if services.dispatcher is not None:
        services.dispatcher.wake()  # this process delivers: now, not at the next poll


async def list_leads(request: Request) -> Response:
    await require_actor(request)
    services = services_of(request)
    params = request.query_params
    query = listing.read_filters(params, services.settings, services.now())
    limit = listing.read_limit(params)
    async with services.database.reading() as session:
        page = await listing.list_page(
            session=session, query=query, limit=limit, cursor=params.get("cursor")
        )
    return JSONResponse(page.as_dict(), headers=NO_STORE)


async def get_lead(request: Request) -> Response:
    actor = await require_actor(request)
    services = services_of(request)
    lead_id = _lead_id(request)
    async with services.database.writing() as session:
        lead = await viewed_lead(
            session=session,
            actor=actor,
            lead_id=lead_id,
            now=services.now(),
            address=client_address(request),
        )
        return await _lead_answer(session, lead)


async def patch_lead(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    change = read_change(await _body(request, services))
    async with services.database.writing() as session:
        lead = await change_lead(
            session=session,
            actor=actor,
            lead_id=lead_id,
            change=change,
            now=services.now(),
            if_match=request.headers.get("if-match"),
            address=client_address(request),
        )
        return await _lead_answer(session, lead)


async def post_note(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    body = await _body(request, services)
    text = read_note(body.get("text"))
    async with services.database.writing() as session:
        event = await add_note(
            session=session,
            actor=actor,
            lead_id=lead_id,
            text=text,
            now=services.now(),
            address=client_address(request),
        )
        entry = event_entry(event)
    return JSONResponse(entry, status_code=201, headers=NO_STORE)


async def release(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    async with services.database.writing() as session:
        lead = await release_from_spam(
            session=session,
            settings=services.settings,
            forms=services.forms,
            actor=actor,
            lead_id=lead_id,
            now=services.now(),
            address=client_address(request),
        )
        answer = await _lead_answer(session, lead)
    _wake(services)
    return answer


async def resend(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    try:
        message_id = uuid.UUID(request.path_params["message_id"])
    except ValueError:
        raise StaffMessageNotFound() from None
    async with services.database.writing() as session:
        await resend_message(
            session=session,
            actor=actor,
            lead_id=lead_id,
            message_id=message_id,
            now=services.now(),
            address=client_address(request),
        )
        answer = await _lead_answer(session, await existing_lead(session=session, lead_id=lead_id))
    _wake(services)
    return answer


async def merge(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    into = read_target(await _body(request, services))
    async with services.database.writing() as session:
        lead = await merge_lead(
            session=session,
            actor=actor,
            lead_id=lead_id,
            into=into,
            now=services.now(),
            address=client_address(request),
        )
        return await _lead_answer(session, lead)


async def _lead_action(request: Request, use_case: Callable[..., Awaitable[Lead]]) -> Response:
    """A write to one lead that takes nothing but the lead: run it, answer with the lead."""
    actor = await require_actor(request, write=True)
    services = services_of(request)
    lead_id = _lead_id(request)
    async with services.database.writing() as session:
        lead = await use_case(
            session=session,
            actor=actor,
            lead_id=lead_id,
            now=services.now(),
            address=client_address(request),
        )
        return await _lead_answer(session, lead)


async def unmerge(request: Request) -> Response:
    return await _lead_action(request, unmerge_lead)


async def withdraw(request: Request) -> Response:
    return await _lead_action(request, withdraw_consent)


async def download_csv(request: Request) -> Response:
    actor = await require_actor(request)
    services = services_of(request)
    now = services.now()
    query = listing.read_filters(request.query_params, services.settings, now)
    async with services.database.writing() as session:
        await record_audit(
            session=session,
            actor=actor.label,
            action=AuditAction.LEADS_EXPORTED,
            now=now,
            address=client_address(request),
            detail={"format": "csv", "filters": audit_filters(query)},
        )
    filename = f"leads-{now.date().isoformat()}.csv"
    return StreamingResponse(
        csv_chunks(services.database, query),
        media_type="text/csv; charset=utf-8",
        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


routes = [
    Route("/api/staff/leads", list_leads, methods=["GET"]),
    Route("/api/staff/leads.csv", download_csv, methods=["GET"]),
    Route("/api/staff/leads/{lead_id}", get_lead, methods=["GET"]),
    Route("/api/staff/leads/{lead_id}", patch_lead, methods=["PATCH"]),
    Route("/api/staff/leads/{lead_id}/notes", post_note, methods=["POST"]),
    Route("/api/staff/leads/{lead_id}/release", release, methods=["POST"]),
    Route("/api/staff/leads/{lead_id}/merge", merge, methods=["POST"]),
    Route("/api/staff/leads/{lead_id}/unmerge", unmerge, methods=["POST"]),
    Route("/api/staff/leads/{lead_id}/withdraw-consent", withdraw, methods=["POST"]),
    Route("/api/staff/leads/{lead_id}/messages/{message_id}/resend", resend, methods=["POST"]),
]
