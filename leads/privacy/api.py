"""``POST /api/staff/erasures``: erase a person, for admins only (a staff session that is an
admin's; API tokens never are). The body names the person by exactly one of ``email`` and
``phone``, and may ask for a ``dry_run``; the answer is the counts removed, by kind."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.errors import FieldError, InvalidSubmission
from leads.privacy.erasure import erase_subject
from leads.privacy.matching import read_subject
from leads.services import services_of
from leads.staff.access import client_address, require_actor
from leads.web.bodies import read_json_object

FIELDS = frozenset({"email", "phone", "dry_run"})


async def post_erasure(request: Request) -> Response:
    actor = await require_actor(request, write=True, admin=True)
    services = services_of(request)
    body = await read_json_object(request, services.settings.max_body_bytes)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidSubmission(
            [FieldError(name, "unknown_field", "Send only email or phone.") for name in unknown]
        )
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise InvalidSubmission(
            [FieldError("dry_run", "invalid_type", "dry_run is true or false.")]
        )
    subject = read_subject(
        email=body.get("email"), phone=body.get("phone"), region=services.settings.default_region
    )
    async with services.database.writing() as session:
        counts = await erase_subject(
            session=session,
            subject=subject,
            actor=actor.label,
            now=services.now(),
            address=client_address(request),
            dry_run=dry_run,
        )
    answer: dict[str, object] = {kind.value: n for kind, n in counts.items()}
    return JSONResponse({**answer, "dry_run": dry_run}, headers={"Cache-Control": "no-store"})


routes = [Route("/api/staff/erasures", post_erasure, methods=["POST"])]
