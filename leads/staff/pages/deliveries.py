"""The deliveries page, ``GET /staff/deliveries``: the clinic's notifications as they stand
(:func:`leads.staff.deliveries.deliveries_overview`). Dead letters come first, each with its
error and a "Retry" button (``POST /staff/deliveries/{id}/retry``), and one "Retry all dead
letters" (``POST /staff/deliveries/retry-all``); both run
:func:`leads.staff.retrying.retry_dead_letters`, recorded as ``message_retried``. Then the
messages on their way with their age, then the last ones delivered. Each links to its lead."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.errors import MessageNotFound
from leads.services import Services, services_of
from leads.staff.access import Actor, client_address, require_form_actor, require_page_actor
from leads.staff.deliveries import Delivery, deliveries_overview
from leads.staff.pagekit import staff_redirect
from leads.staff.pages.frame import render_page
from leads.staff.pages.wording import channel_label, kind_label
from leads.staff.pages.words import local_time, waited
from leads.staff.retrying import retry_dead_letters
from leads.web.bodies import read_form_fields

HOME = "/staff/deliveries"
NOTICES = {
    "retried": "Queued to be sent again now.",
    "retried_all": "Every dead letter is queued to be sent again now.",
    "none": "There was nothing to retry.",
    "gone": "That notification is not a dead letter any more.",
}


def _row(delivery: Delivery, zone: str, now: datetime) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "lead_id": delivery.lead_id,
        "first_name": delivery.first_name or "(no name)",
        "what": kind_label(delivery.kind),
        "how": channel_label(delivery.channel),
        "target": delivery.target,
        "attempts": delivery.attempts,
        "created": local_time(delivery.created_at, zone),
        "age": waited(now - delivery.created_at),
        "next": local_time(delivery.next_attempt_at, zone),
        "delivered": local_time(delivery.delivered_at, zone) if delivery.delivered_at else "",
        "error": delivery.error,
    }


async def deliveries_page(request: Request) -> Response:
    actor = await require_page_actor(request)
    services = services_of(request)
    now = services.now()
    async with services.database.reading() as session:
        overview = await deliveries_overview(session=session)
    zone = services.settings.timezone
    return await render_page(
        request,
        "staff/deliveries.html",
        {
            "dead": [_row(d, zone, now) for d in overview.dead],
            "pending": [_row(d, zone, now) for d in overview.pending],
            "delivered": [_row(d, zone, now) for d in overview.delivered],
            "notice": NOTICES.get(request.query_params.get("done", "")),
        },
        actor=actor,
        section="deliveries",
    )


async def _retry(request: Request, services: Services, actor: Actor, **which: Any) -> int | None:
    try:
        async with services.database.writing() as session:
            count = await retry_dead_letters(
                session=session,
                actor=actor,
                now=services.now(),
                address=client_address(request),
                **which,
            )
    except MessageNotFound:
        return None
    if count and services.dispatcher is not None:
        services.dispatcher.wake()
    return count


async def retry_one(request: Request) -> Response:
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    actor = await require_form_actor(request, fields)
    try:
        message_id = uuid.UUID(request.path_params["message_id"])
    except ValueError:
        return staff_redirect(f"{HOME}?done=gone")
    count = await _retry(request, services, actor, ids=[message_id])
    return staff_redirect(f"{HOME}?done={'retried' if count else 'gone'}")


async def retry_all(request: Request) -> Response:
    services = services_of(request)
    fields = await read_form_fields(request, services.settings.max_body_bytes)
    actor = await require_form_actor(request, fields)
    count = await _retry(request, services, actor, all_dead=True)
    return staff_redirect(f"{HOME}?done={'retried_all' if count else 'none'}")


routes = [
    Route(HOME, deliveries_page, methods=["GET"]),
    Route(f"{HOME}/retry-all", retry_all, methods=["POST"]),
    Route(HOME + "/{message_id}/retry", retry_one, methods=["POST"]),
]
