"""``GET /api/staff/stats``: response times week by week (:mod:`leads.staff.stats`), for
signed-in staff and API tokens. ``?weeks=N`` (1-52, default 8) says how many weeks back."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from leads.errors import FieldError, InvalidSubmission
from leads.services import services_of, site_of
from leads.staff.access import require_actor
from leads.staff.stats import MAX_WEEKS, response_stats

DEFAULT_WEEKS = 8


def weeks_asked(request: Request) -> int:
    raw = request.query_params.get("weeks")
    if raw is None:
        return DEFAULT_WEEKS
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_WEEKS):
        raise InvalidSubmission(
            [FieldError("weeks", "out_of_range", f"weeks must be a whole number 1-{MAX_WEEKS}")]
        )
    return int(raw)


async def stats(request: Request) -> Response:
    await require_actor(request)
    weeks = weeks_asked(request)
    services = services_of(request)
    async with services.database.reading() as session:
        body = await response_stats(
            session=session, settings=site_of(request).settings, now=services.now(), weeks=weeks
        )
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


routes = [Route("/api/staff/stats", stats, methods=["GET"])]
