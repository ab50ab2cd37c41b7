"""The staff API's lists and downloads, through HTTP, on SQLite and PostgreSQL: who may ask,
the filters, search, cursor pagination while leads keep arriving, and the CSV file."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from leads.core.vocabulary import TokenScope
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.models import Lead
from leads.storage.staff_tables import User
from tests.conftest import LeadOf, Query, make_settings

PROBLEM = "application/problem+json"


class Staff:
    """Tokens and accounts made on the test's database, as an operator would."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    async def token(self, scope: TokenScope = TokenScope.READ) -> dict[str, str]:
        database = Database.from_settings(make_settings(self.database_url))
        try:
            async with database.writing() as session:
                token = await create_token(
                    session=session,
                    name=f"t-{uuid.uuid4().hex[:8]}",
                    scope=scope,
                    actor="cli",
                    now=datetime.now(UTC),
                )
        finally:
            await database.close()
        return {"Authorization": f"Bearer {token}"}

    async def update(self, *lead_ids: str, **values: Any) -> None:
        """Set stored values directly: what no request can send (a past creation time)."""
        database = Database.from_settings(make_settings(self.database_url))
        try:
            async with database.writing() as session:
                keys = [uuid.UUID(i) for i in lead_ids]
                await session.execute(update(Lead).where(col(Lead.id).in_(keys)).values(**values))
        finally:
            await database.close()

    async def user(self, email: str, *, active: bool = True) -> None:
        database = Database.from_settings(make_settings(self.database_url))
        try:
            async with database.writing() as session:
                session.add(User(email=email, password_hash="x", active=active))
        finally:
            await database.close()


@pytest.fixture
async def staff(client: httpx.AsyncClient, database_url: str) -> Staff:
    return Staff(database_url)  # `client` first: it migrates the database


async def submit(client: httpx.AsyncClient, lead: Any, lead_of: LeadOf, **fields: Any) -> str:
    response = await client.post("/api/leads", json=lead(**fields))
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


def errors_of(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {e["field"]: e["code"] for e in response.json()["errors"]}


async def ids(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[str]:
    response = await client.get("/api/staff/leads", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


async def test_staff_routes_need_a_token_and_writes_a_write_token(
    client, staff: Staff, lead, lead_of
) -> None:
    lead_id = await submit(client, lead, lead_of)
    anonymous = await client.get("/api/staff/leads")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == PROBLEM
    assert anonymous.json()["code"] == "not_authenticated"
    assert (await client.get(f"/api/staff/leads/{lead_id}")).status_code == 401
    assert (await client.get("/api/staff/leads.csv")).status_code == 401
    wrong = await client.get("/api/staff/leads", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401

    read = await staff.token()
    assert (await client.get("/api/staff/leads", headers=read)).status_code == 200
    refused = await client.patch(
        f"/api/staff/leads/{lead_id}", json={"status": "contacted"}, headers=read
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_allowed"
    for path in ("notes", "release", "merge", "unmerge"):
        answer = await client.post(f"/api/staff/leads/{lead_id}/{path}", json={}, headers=read)
        assert answer.status_code == 403, path

    for missing in (uuid.uuid4(), "not-an-id"):
        answer = await client.get(f"/api/staff/leads/{missing}", headers=read)
        assert answer.status_code == 404
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["code"] == "lead_not_found"


async def test_the_list_is_newest_first_without_spam_or_merged_leads(
    client, staff: Staff, lead, lead_of, query: Query
) -> None:
    first = await submit(client, lead, lead_of)
    second = await submit(client, lead, lead_of)
    spam = await submit(client, lead, lead_of, website="http://spam.example")
    merged = await submit(client, lead, lead_of)
    await staff.update(merged, merged_into=uuid.UUID(first))
    headers = await staff.token()
    await staff.update(first, created_at=datetime.now(UTC) - timedelta(minutes=1))
    assert await ids(client, headers) == [second, first]
    assert await ids(client, headers, spam="true") == [spam]
    page = (await client.get("/api/staff/leads", headers=headers)).json()
    assert page["next_cursor"] is None
    item = page["items"][0]
    for field in ("id", "name", "email", "status", "spam", "enquiry_ids", "notifications"):
        assert field in item
    assert item["assigned_to"] is None
    assert item["first_response_at"] is None
    assert item["merged_into"] is None


async def test_each_filter(client, staff: Staff, lead, lead_of, query: Query) -> None:
    await staff.user("sam@clinic.example")
    write = await staff.token(TokenScope.WRITE)
    old = await submit(client, lead, lead_of, phone="+44 20 7946 0958", name="Öllie Brown")
    booked = await submit(client, lead, lead_of, email="Grace.Hopper@Example.com")
    mine = await submit(client, lead, lead_of, name="Sam's patient")
    await staff.update(old, created_at=datetime(2025, 1, 10, 12, tzinfo=UTC))
    patched = await client.patch(
        f"/api/staff/leads/{booked}", json={"status": "booked"}, headers=write
    )
    assert patched.status_code == 200, patched.text
    assigned = await client.patch(
        f"/api/staff/leads/{mine}", json={"assigned_to": "Sam@Clinic.example"}, headers=write
    )
    assert assigned.status_code == 200, assigned.text

    assert await ids(client, write, status="booked") == [booked]
    assert set(await ids(client, write, status="new")) == {old, mine}
    assert set(await ids(client, write, form="dry-needling")) == {old, booked, mine}
    assert await ids(client, write, form="other") == []
    assert await ids(client, write, created_before="2025-01-11") == [old]
    assert await ids(client, write, created_after="2025-01-11") == [mine, booked]
    assert await ids(client, write, created_after="2025-01-10T12:00:00Z") == [mine, booked, old]
    assert await ids(client, write, created_after="2025-01-10T12:00:01+00:00") == [mine, booked]
    assert await ids(client, write, assigned_to="sam@clinic.example") == [mine]
    assert await ids(client, write, assigned_to="none") == [booked, old]
    assert await ids(client, write, assigned_to="nobody@clinic.example") == []
    # Search: case-insensitive, in names, emails and the phone's digits.
    assert await ids(client, write, q="grace.HOPPER") == [booked]
    assert await ids(client, write, q="sam's") == [mine]
    assert await ids(client, write, q="020 7946 0958") == [old]  # national, with its 0
    assert await ids(client, write, q="+44 20 7946") == [old]
    assert await ids(client, write, q="7946") == [old]
    assert await ids(client, write, q="%") == []  # a wildcard is only a character
    assert await ids(client, write, q="nobody") == []


async def test_overdue_counts_the_follow_up_deadline(
    client, staff: Staff, lead, lead_of, query: Query
) -> None:
    headers = await staff.token()
    late = await submit(client, lead, lead_of)
    fresh = await submit(client, lead, lead_of)
    answered = await submit(client, lead, lead_of)
    past = datetime.now(UTC) - timedelta(hours=5)  # LEADS_FOLLOW_UP_HOURS is 4, always open
    await staff.update(late, answered, created_at=past)
    await staff.update(answered, status="contacted")
    assert await ids(client, headers, overdue="true") == [late]
    assert set(await ids(client, headers, overdue="false")) == {fresh, answered}


async def test_bad_parameters_are_422_naming_each(client, staff: Staff) -> None:
    headers = await staff.token()
    response = await client.get(
        "/api/staff/leads",
        params={
            "status": "lost",
            "spam": "maybe",
            "overdue": "1",
            "created_after": "yesterday",
            "created_before": "2025-13-01",
            "assigned_to": "sam",
        },
        headers=headers,
    )
    assert errors_of(response) == {
        "status": "invalid_choice",
        "spam": "invalid_boolean",
        "overdue": "invalid_boolean",
        "created_after": "invalid_datetime",
        "created_before": "invalid_datetime",
        "assigned_to": "invalid_email",
    }
    for limit in ("0", "201", "ten", "-1"):
        answer = await client.get("/api/staff/leads", params={"limit": limit}, headers=headers)
        assert errors_of(answer) == {"limit": "out_of_range"}
    for cursor in ("garbage", "eyJ4IjogMX0", "W10"):
        answer = await client.get("/api/staff/leads", params={"cursor": cursor}, headers=headers)
        assert errors_of(answer) == {"cursor": "invalid_cursor"}
    csv_bad = await client.get("/api/staff/leads.csv", params={"spam": "x"}, headers=headers)
    assert errors_of(csv_bad) == {"spam": "invalid_boolean"}


async def test_pages_list_every_lead_once_while_leads_keep_arriving(
    client, staff: Staff, lead, lead_of, query: Query
) -> None:
    headers = await staff.token()
    earlier = [await submit(client, lead, lead_of) for _ in range(5)]
    # Two leads at the very same instant: the id decides between them.
    same = datetime.now(UTC) - timedelta(minutes=1)
    await staff.update(earlier[1], earlier[2], created_at=same)
    seen: list[str] = []
    cursor = None
    arrived = []
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/staff/leads", params=params, headers=headers)).json()
        seen += [item["id"] for item in page["items"]]
        arrived.append(await submit(client, lead, lead_of))  # arrives between two pages
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(earlier)
    assert len(seen) == len(set(seen)) == 5
    assert not set(arrived) & set(seen)
    # A fresh first page shows the newcomers, newest first.
    assert await ids(client, headers, limit=len(arrived)) == arrived[::-1]


async def test_csv_download_neutralises_formulas_but_keeps_e164_phones(
    client, staff: Staff, lead, lead_of, query: Query
) -> None:
    headers = await staff.token()
    formula = await submit(client, lead, lead_of, name="=cmd|' /C calc'!A0")
    await staff.update(formula, phone="+15551234567")
    spaced = await submit(client, lead, lead_of, name="@SUM(A1)")
    await staff.update(spaced, phone="+1 555", interest="\tx")
    minus = await submit(client, lead, lead_of, name="-2+3")
    await staff.update(minus, message="\rcr")
    await submit(client, lead, lead_of, website="http://spam.example")  # the spam folder: not here

    response = await client.get("/api/staff/leads.csv", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.text.splitlines()[0].startswith('"id","created_at","form","name"')
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == {formula, spaced, minus}
    assert rows[formula]["name"] == "'=cmd|' /C calc'!A0"
    assert rows[formula]["phone"] == "+15551234567"  # E.164: dialable, not a formula
    assert rows[spaced]["name"] == "'@SUM(A1)"
    assert rows[spaced]["phone"] == "'+1 555"
    assert rows[spaced]["interest"] == "'\tx"
    assert rows[minus]["name"] == "'-2+3"
    assert rows[minus]["message"] == "'\rcr"

    filtered = await client.get(
        "/api/staff/leads.csv", params={"q": "sum(a1)", "spam": "false"}, headers=headers
    )
    assert [r["id"] for r in csv.DictReader(io.StringIO(filtered.text))] == [spaced]

    audit = await query(
        "SELECT actor, action, detail FROM audit_log WHERE action = 'leads_exported'"
    )
    assert len(audit) == 2
    assert all(entry["actor"].startswith("token:t-") for entry in audit)
    text = str([entry["detail"] for entry in audit])
    assert "sum(a1)" not in text.lower()  # that a search was used, never its words
    assert "'search': True" in text or '"search": true' in text
