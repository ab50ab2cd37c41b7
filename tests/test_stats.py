"""Response-time statistics: ``GET /api/staff/stats`` and the numbers behind it, counted in
opening hours, week by week in the clinic's zone."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from leads.app import create_app
from leads.core.vocabulary import LeadStatus, TokenScope
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.models import Lead
from tests.clock import FakeClock
from tests.conftest import LeadOf, make_settings, migrate

ZONE = "America/New_York"
CLINIC = {"timezone": ZONE, "opening_hours": "Mon-Fri 09:00-17:00", "follow_up_hours": 4}


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


NOW = local("2026-03-11 12:00")  # a Wednesday


@contextlib.asynccontextmanager
async def staff_client(
    database_url: str, now: datetime = NOW, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Database, str]]:
    """The app on a clock standing at ``now``, an HTTP client, the database, and a read
    token."""
    settings = make_settings(database_url, **{**CLINIC, **overrides})
    await migrate(settings)
    app = create_app(settings, clock=FakeClock(now.timestamp()))
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            token = await create_token(
                session=session, name="reports", scope=TokenScope.READ, actor="cli", now=now
            )
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://testserver"
            ) as client,
        ):
            yield client, database, token
    finally:
        await database.close()


async def new_lead(
    client: httpx.AsyncClient,
    database: Database,
    lead_of: LeadOf,
    lead: Callable[..., dict[str, Any]],
    created: str,
    answered: str | None = None,
    **columns: Any,
) -> uuid.UUID:
    """A lead sent through the API, then placed in time as the staff side would have left
    it: created at ``created`` (local), first answered at ``answered``."""
    response = await client.post("/api/leads", json=lead())
    assert response.status_code == 201, response.text
    lead_id = uuid.UUID(await lead_of(response.json()["id"]))
    values: dict[str, Any] = {"created_at": local(created), **columns}
    if answered is not None:
        values.update(status=LeadStatus.CONTACTED, first_response_at=local(answered))
    async with database.writing() as session:
        await session.execute(update(Lead).where(col(Lead.id) == lead_id).values(**values))
    return lead_id


async def test_weeks_are_counted_in_opening_hours_newest_first(
    database_url: str, lead_of: LeadOf, lead: Callable[..., dict[str, Any]]
) -> None:
    async with staff_client(database_url) as (client, database, token):
        add = lambda *a, **k: new_lead(client, database, lead_of, lead, *a, **k)  # noqa: E731
        # This week (Monday 2026-03-09):
        await add("2026-03-09 09:00", "2026-03-09 10:00")  # 1 opening hour
        await add("2026-03-09 16:00", "2026-03-10 11:00")  # 1 h Monday + 2 h Tuesday
        await add("2026-03-10 12:00", "2026-03-11 10:00")  # 5 h + 1 h: past the 4 hours
        await add("2026-03-10 13:00")  # still waiting
        await add("2026-03-10 14:00", spam=True, spam_reason="honeypot")  # not counted
        other = await add("2026-03-10 14:30")
        await add("2026-03-10 15:00", merged_into=other)  # merged away: not counted
        # Last week: Friday afternoon, answered Monday morning (the weekend does not count);
        # and Sunday 23:30 in New York, which is already Monday in UTC.
        await add("2026-03-06 16:00", "2026-03-09 10:00")
        await add("2026-03-08 23:30")

        response = await client.get(
            "/api/staff/stats?weeks=3", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["follow_up_hours"] == 4
    assert body["timezone"] == ZONE
    assert body["weeks"] == [
        {
            "week": "2026-03-09",
            "leads": 5,
            "median_response_seconds": 10800.0,
            # (n - 1) * 0.9 = 1.8: 10800 + 0.8 * (21600 - 10800)
            "p90_response_seconds": 19440.0,
            "answered_within_deadline": 0.4,
            "waiting": 2,
        },
        {
            "week": "2026-03-02",
            "leads": 2,
            "median_response_seconds": 7200.0,
            "p90_response_seconds": 7200.0,
            "answered_within_deadline": 0.5,
            "waiting": 1,
        },
        {
            "week": "2026-02-23",
            "leads": 0,
            "median_response_seconds": None,
            "p90_response_seconds": None,
            "answered_within_deadline": None,
            "waiting": 0,
        },
    ]


async def test_a_week_with_no_answer_yet_has_no_response_times(
    database_url: str, lead_of: LeadOf, lead: Callable[..., dict[str, Any]]
) -> None:
    async with staff_client(database_url) as (client, database, token):
        await new_lead(client, database, lead_of, lead, "2026-03-11 09:30")
        response = await client.get(
            "/api/staff/stats", headers={"Authorization": f"Bearer {token}"}
        )
    weeks = response.json()["weeks"]
    assert len(weeks) == 8  # the default
    assert weeks[0] == {
        "week": "2026-03-09",
        "leads": 1,
        "median_response_seconds": None,
        "p90_response_seconds": None,
        "answered_within_deadline": 0.0,
        "waiting": 1,
    }
    assert [w["week"] for w in weeks[-2:]] == ["2026-01-26", "2026-01-19"]


async def test_always_open_counts_wall_clock_time(
    database_url: str, lead_of: LeadOf, lead: Callable[..., dict[str, Any]]
) -> None:
    async with staff_client(database_url, opening_hours="Mon-Sun 00:00-24:00") as (
        client,
        database,
        token,
    ):
        # Across the night summer time began (02:00 became 03:00): 23 hours, not 24.
        await new_lead(client, database, lead_of, lead, "2026-03-07 12:00", "2026-03-08 12:00")
        response = await client.get(
            "/api/staff/stats?weeks=2", headers={"Authorization": f"Bearer {token}"}
        )
    last_week = response.json()["weeks"][1]
    assert last_week["median_response_seconds"] == 23 * 3600
    assert last_week["answered_within_deadline"] == 0.0


async def test_stats_are_for_staff_only(database_url: str) -> None:
    async with staff_client(database_url) as (client, _, _token):
        response = await client.get("/api/staff/stats")
        wrong = await client.get(
            "/api/staff/stats", headers={"Authorization": "Bearer leads_not-a-token"}
        )
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert wrong.status_code == 401


@pytest.mark.parametrize("weeks", ["0", "53", "x", "-1", "2.5", "", "٣"])
async def test_a_bad_weeks_is_a_422_naming_it(database_url: str, weeks: str) -> None:
    async with staff_client(database_url) as (client, _, token):
        response = await client.get(
            "/api/staff/stats",
            params={"weeks": weeks},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in response.json()["errors"]] == ["weeks"]


async def test_fifty_two_weeks_at_most(database_url: str) -> None:
    async with staff_client(database_url) as (client, _, token):
        response = await client.get(
            "/api/staff/stats?weeks=52", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200
    assert len(response.json()["weeks"]) == 52
