"""The response-times page, ``GET /staff/response-times``: the speed-to-lead clock week by
week (:func:`leads.staff.stats.response_stats`, the numbers ``GET /api/staff/stats``
gives), as a table: leads, the median and 90th-percentile time to a first response counted
in opening hours, the share answered within LEADS_FOLLOW_UP_HOURS, and those still
waiting. ``?weeks=N`` (1-52, default 8) as for the API."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from leads.services import services_of
from leads.staff.access import require_page_actor
from leads.staff.pages.frame import render_page
from leads.staff.pages.wording import hours_plainly
from leads.staff.pages.words import waited
from leads.staff.stats import response_stats
from leads.staff.stats_api import weeks_asked


def _week_label(monday: date) -> str:
    sunday = monday + timedelta(days=6)
    return f"{monday.day} {monday:%b} to {sunday.day} {sunday:%b %Y}"


def _row(week: dict[str, Any]) -> dict[str, Any]:
    median, p90 = week["median_response_seconds"], week["p90_response_seconds"]
    share = week["answered_within_deadline"]
    return {
        "week": _week_label(date.fromisoformat(week["week"])),
        "leads": week["leads"],
        "median": waited(timedelta(seconds=median)) if median is not None else "none answered",
        "p90": waited(timedelta(seconds=p90)) if p90 is not None else "none answered",
        "within": f"{round(share * 100)}%" if share is not None else "no leads",
        "waiting": week["waiting"],
    }


def _hours(value: float) -> str:
    whole = int(value)
    return waited(timedelta(hours=value)) if value != whole else f"{whole} h"


async def response_times(request: Request) -> Response:
    actor = await require_page_actor(request)
    weeks = weeks_asked(request)
    services = services_of(request)
    settings = services.settings
    async with services.database.reading() as session:
        stats = await response_stats(
            session=session, settings=settings, now=services.now(), weeks=weeks
        )
    return await render_page(
        request,
        "staff/response_times.html",
        {
            "rows": [_row(week) for week in stats["weeks"]],
            "opening_hours": hours_plainly(settings.opening_hours),
            "deadline": _hours(settings.follow_up_hours),
            "timezone": settings.timezone,
        },
        actor=actor,
        section="response-times",
    )


routes = [Route("/staff/response-times", response_times, methods=["GET"])]
