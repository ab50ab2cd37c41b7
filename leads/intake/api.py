"""``POST /api/leads``: the JSON contract for websites with their own form."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from leads.abuse.tokens import MAX_AGE_SECONDS
from leads.errors import InvalidIdempotencyKey, TooManySubmissions
from leads.intake.pipeline import Arrival, count_refusal, take_submission
from leads.intake.receipts import Receipt
from leads.services import services_of, site_of
from leads.web.bodies import read_json_object


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not (1 <= len(key) <= 255) or not all("!" <= c <= "~" for c in key):
        raise InvalidIdempotencyKey()
    return key


async def create_lead(request: Request) -> Response:
    services = services_of(request)
    defences = services.defences
    ip = defences.client_ip(request)
    key = idempotency_key(request)
    limited: TooManySubmissions | None = None
    try:
        await defences.before_reading(request, ip)
    except TooManySubmissions as exc:
        if key is None:
            count_refusal(services, exc)
            raise
        limited = exc  # a retry of a request that succeeded still gets its answer
    raw = await read_json_object(request, services.settings.max_body_bytes)
    receipt = await take_submission(
        services, raw, Arrival.of(request, ip), idempotency_key=key, limited=limited
    )
    return created(receipt)


def created(receipt: Receipt) -> Response:
    headers = {"Idempotent-Replayed": "true"} if receipt.outcome == "replayed" else None
    return JSONResponse(
        {"id": str(receipt.id), "status": "received"}, status_code=201, headers=headers
    )


async def form_token(request: Request) -> Response:
    """A time-trap token for a site's own form (``/embed.js`` fetches it)."""
    site = site_of(request)
    settings = site.settings
    slug = request.query_params.get("form") or site.forms.default_slug
    form = site.forms.get(slug)
    token = services_of(request).defences.form_token(form.slug)
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
