"""``POST /api/leads``: the JSON contract for websites with their own form."""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from leads.abuse.tokens import MAX_AGE_SECONDS
from leads.errors import InvalidIdempotencyKey, TooManySubmissions
from leads.intake.capture import CaptureJob, IdempotencyKey, Receipt, RequestMeta, replay_of
from leads.intake.defence import Defences
from leads.intake.submission import parse_submission
from leads.web.bodies import read_json_object

log = logging.getLogger("leads.intake")


def request_meta(request: Request, ip: str | None) -> RequestMeta:
    agent = request.headers.get("user-agent")
    return RequestMeta(client_ip=ip, user_agent=agent[:500] if agent else None)


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
    log.info(
        "lead %s %s (receipt=%s form=%s spam=%s)",
        receipt.lead_id,
        receipt.outcome,
        receipt.id,
        form,
        receipt.spam,
    )
    dispatcher = getattr(request.app.state, "dispatcher", None)
    if receipt.notify and dispatcher is not None:
        dispatcher.wake()


async def create_lead(request: Request) -> Response:
    state = request.app.state
    defences: Defences = state.defences
    ip = defences.client_ip(request)
    key = idempotency_key(request)
    limited: TooManySubmissions | None = None
    try:
        await defences.before_reading(request, ip)
    except TooManySubmissions as exc:
        if key is None:
            raise
        limited = exc  # a retry of a request that succeeded still gets its answer
    raw = await read_json_object(request, state.settings.max_body_bytes)
    submission = parse_submission(
        raw, forms=state.forms, default_region=state.settings.default_region
    )
    scoped = None
    if key is not None:
        scoped = IdempotencyKey.of(
            key, submission, client_ip=ip, origin=request.headers.get("origin")
        )
        if (replayed := await replay_of(state.database, scoped)) is not None:
            return created(replayed)
    if limited is not None:
        raise limited
    submission = await defences.screen(submission, ip=ip)
    job = CaptureJob(submission, request_meta(request, ip), scoped)
    receipt = await state.intake.capture(job)
    after_commit(request, receipt, submission.form.slug)
    return created(receipt)


def created(receipt: Receipt) -> Response:
    headers = {"Idempotent-Replayed": "true"} if receipt.outcome == "replayed" else None
    return JSONResponse(
        {"id": str(receipt.id), "status": "received"}, status_code=201, headers=headers
    )


async def form_token(request: Request) -> Response:
    """A time-trap token for a site's own form (``/embed.js`` fetches it)."""
    settings = request.app.state.settings
    slug = request.query_params.get("form") or request.app.state.forms.default_slug
    form = request.app.state.forms.get(slug)
    token = request.app.state.defences.form_token(form.slug)
    return JSONResponse(
        {
            "form": form.slug,
            "form_token": token,
            "min_fill_seconds": settings.min_fill_seconds,
            "expires_in": MAX_AGE_SECONDS,
        },
        headers={"Cache-Control": "no-store"},
    )


async def embed_js(request: Request) -> Response:
    return FileResponse(
        STATIC / "embed.js",
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=3600"},
    )


STATIC = Path(__file__).parent.parent / "static"

routes = [
    Route("/api/leads", create_lead, methods=["POST"]),
    Route("/api/form-token", form_token, methods=["GET"]),
    Route("/embed.js", embed_js, methods=["GET"]),
]
