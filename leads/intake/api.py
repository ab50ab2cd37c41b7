"""``POST /api/leads``: the JSON contract for websites with their own form."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.errors import InvalidIdempotencyKey
from leads.intake.capture import CaptureJob, Receipt, RequestMeta
from leads.intake.submission import parse_submission
from leads.web.bodies import read_json_object

log = logging.getLogger("leads.intake")


def request_meta(request: Request) -> RequestMeta:
    agent = request.headers.get("user-agent")
    return RequestMeta(
        client_ip=request.client.host if request.client else None,
        user_agent=agent[:500] if agent else None,
    )


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (1 <= len(key) <= 255) or not all("!" <= c <= "~" for c in key):
        raise InvalidIdempotencyKey()
    return key


def after_commit(request: Request, receipt: Receipt, form: str) -> None:
    """Log the outcome (ids only: never names, contact details or messages) and wake the
    in-process dispatcher, if this process runs one, to deliver the notifications now."""
    log.info("lead %s %s (form=%s spam=%s)", receipt.lead_id, receipt.outcome, form, receipt.spam)
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if receipt.notify and dispatcher is not None:
        dispatcher.wake()


async def create_lead(request: Request) -> Response:
    state = request.app.state
    key = idempotency_key(request)
    raw = await read_json_object(request, state.settings.max_body_bytes)
    submission = parse_submission(
        raw, forms=state.forms, default_region=state.settings.default_region
    )
    receipt = await state.intake.capture(CaptureJob(submission, request_meta(request), key))
    after_commit(request, receipt, submission.form.slug)
    headers = {"Idempotent-Replayed": "true"} if receipt.outcome == "replayed" else None
    return JSONResponse(
        {"id": str(receipt.lead_id), "status": "received"}, status_code=201, headers=headers
    )


routes = [Route("/api/leads", create_lead, methods=["POST"])]
