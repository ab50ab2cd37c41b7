"""Retention, on SQLite and PostgreSQL: `leads purge` removes leads past
LEADS_RETENTION_DAYS (spam past LEADS_SPAM_RETENTION_DAYS) by their last activity, with
everything of theirs, and expired keys and ended sessions; a dry run removes nothing; the
audit log keeps its entries without the lead's id; and the service purges once a day,
however many dispatchers share the database."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col

from leads.core.vocabulary import Role, TokenScope
from leads.settings import Settings
from leads.staff.accounts import add_user
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.models import Enquiry, IdempotencyRecord, Lead, OutboxMessage
from leads.storage.staff_tables import LeadEvent, StaffSession
from tests.conftest import LeadOf, Query, make_settings, serving_app
from tests.support import TurnClock, dispatchers, eventually, leads_cli

Body = Callable[..., dict[str, Any]]
PASSWORD = "correct horse battery"


async def write(settings: Settings, *statements: Any) -> None:
    """Set stored values directly: what no request can send (a time long past)."""
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            for statement in statements:
                await session.execute(statement)
    finally:
        await database.close()


async def age(settings: Settings, lead_id: str, when: datetime) -> None:
    """Make a lead, its enquiries, its timeline, keys and notifications look that old."""
    key = uuid.UUID(lead_id)
    await write(
        settings,
        update(Lead)
        .where(col(Lead.id) == key)
        .values(created_at=when, updated_at=when, last_enquiry_at=when, consent_at=when),
        update(Enquiry).where(col(Enquiry.lead_id) == key).values(created_at=when),
        update(LeadEvent).where(col(LeadEvent.lead_id) == key).values(at=when),
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.lead_id) == key)
        .values(created_at=when),
        update(OutboxMessage).where(col(OutboxMessage.lead_id) == key).values(created_at=when),
    )


def uid(value: Any) -> str:
    """An id as the database hands it back (a UUID, or SQLite's hex), as text."""
    return str(uuid.UUID(str(value)))


def detail_of(entry: dict[str, Any]) -> dict[str, Any]:
    detail = entry["detail"]
    return detail if isinstance(detail, dict) else dict(json.loads(detail))


async def token(settings: Settings) -> dict[str, str]:
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            value = await create_token(
                session=session,
                name=f"t-{uuid.uuid4().hex[:8]}",
                scope=TokenScope.WRITE,
                actor="cli",
                now=datetime.now(UTC),
            )
    finally:
        await database.close()
    return {"Authorization": f"Bearer {value}"}


async def sign_in(client: httpx.AsyncClient, settings: Settings, email: str) -> None:
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            await add_user(
                session=session,
                email=email,
                password=PASSWORD,
                role=Role.STAFF,
                actor="cli",
                now=datetime.now(UTC),
            )
    finally:
        await database.close()
    page = await client.get("/staff/login")
    found = re.search(r'name="login_token" value="([^"]*)"', page.text)
    assert found, page.text
    data = {"login_token": found.group(1), "email": email, "password": PASSWORD}
    signed_in = await client.post("/staff/login", data=data)
    assert signed_in.status_code == 303, signed_in.text


async def submit(
    client: httpx.AsyncClient, lead_of: LeadOf, body: dict[str, Any], **headers: str
) -> str:
    response = await client.post("/api/leads", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return await lead_of(response.json()["id"])


def counts_printed(stdout: str) -> dict[str, int]:
    return {
        name: int(count) for name, count in re.findall(r"^([a-z ]+): (\d+)$", stdout, re.MULTILINE)
    }


async def table_counts(query: Query) -> dict[str, int]:
    tables = ("leads", "enquiries", "outbox", "lead_events", "idempotency_keys")
    counted = {}
    for table in tables:
        counted[table] = (await query(f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"]  # noqa: S608
    return counted


async def test_purge_removes_what_is_past_its_time_with_everything_of_it(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    now = datetime.now(UTC)
    async with serving_app(settings) as client:
        old_body = lead(phone="(202) 555-0143", message="old story")
        old = await submit(client, lead_of, old_body, **{"Idempotency-Key": "k-old-1"})
        assert await submit(client, lead_of, {**old_body, "message": "again"}) == old
        headers = await token(settings)
        note = await client.post(
            f"/api/staff/leads/{old}/notes", json={"text": "called back"}, headers=headers
        )
        assert note.status_code == 201, note.text
        assert (await client.get(f"/api/staff/leads/{old}", headers=headers)).status_code == 200
        recent = await submit(client, lead_of, lead(), **{"Idempotency-Key": "k-recent"})
        noted = await submit(client, lead_of, lead())  # old, but a note was written today
        spam_old = await submit(client, lead_of, lead(website="http://spam.example"))
        spam_new = await submit(client, lead_of, lead(website="http://spam.example"))
        await sign_in(client, settings, "desk@clinic.example")
    await age(settings, old, now - timedelta(days=731))
    await age(settings, recent, now - timedelta(days=729))
    await age(settings, noted, now - timedelta(days=900))
    await age(settings, spam_old, now - timedelta(days=31))
    await age(settings, spam_new, now - timedelta(days=29))
    async with serving_app(settings) as client:
        note = await client.post(
            f"/api/staff/leads/{noted}/notes", json={"text": "still on it"}, headers=headers
        )
        assert note.status_code == 201
    await write(settings, update(StaffSession).values(expires_at=now - timedelta(hours=1)))
    outbox = await query("SELECT lead_id FROM outbox")
    doomed_outbox = sum(uid(r["lead_id"]) in (old, spam_old) for r in outbox)
    assert doomed_outbox >= 1  # the old lead's notifications (spam has none)
    before = await table_counts(query)

    dry = leads_cli(database_url, "purge", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing was removed" in dry.stdout.splitlines()[0]
    expected = {
        "leads": 2,
        "enquiries": 1,
        "outbox messages": doomed_outbox,
        "timeline entries": 1,
        "idempotency keys": 2,  # the old lead's, and the recent lead's: over 24 hours old
        "sessions": 1,
    }
    assert counts_printed(dry.stdout) == expected
    assert await table_counts(query) == before
    assert len(await query("SELECT * FROM staff_sessions")) == 1
    assert await query("SELECT * FROM audit_log WHERE action = 'purge'") == []

    done = leads_cli(database_url, "purge")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "removed:"
    assert counts_printed(done.stdout) == expected
    kept = {uid(r["id"]) for r in await query("SELECT id FROM leads")}
    assert kept == {recent, noted, spam_new}
    for table in ("enquiries", "outbox", "lead_events", "idempotency_keys"):
        rows = await query(f"SELECT lead_id FROM {table}")  # noqa: S608
        assert {uid(r["lead_id"]) for r in rows} <= kept, table
    assert await query("SELECT * FROM staff_sessions") == []
    # The audit log keeps what was done to the old lead, without saying which lead.
    viewed = await query("SELECT lead_id FROM audit_log WHERE action = 'lead_viewed'")
    assert viewed == [{"lead_id": None}]
    [entry] = await query("SELECT actor, lead_id, detail FROM audit_log WHERE action = 'purge'")
    assert entry["actor"] == "cli"
    assert entry["lead_id"] is None
    assert detail_of(entry) == {name.replace(" ", "_"): n for name, n in expected.items()}

    again = leads_cli(database_url, "purge")
    assert counts_printed(again.stdout) == dict.fromkeys(expected, 0)


async def test_the_retention_settings_are_honoured(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    now = datetime.now(UTC)
    async with serving_app(settings) as client:
        first = await submit(client, lead_of, lead())
        second = await submit(client, lead_of, lead(website="http://spam.example"))
    await age(settings, first, now - timedelta(days=11))
    await age(settings, second, now - timedelta(days=3))
    shorter = {"LEADS_RETENTION_DAYS": "10", "LEADS_SPAM_RETENTION_DAYS": "2"}
    done = leads_cli(database_url, "purge", **shorter)
    assert done.returncode == 0, done.stderr
    assert counts_printed(done.stdout)["leads"] == 2
    assert await query("SELECT * FROM leads") == []
    bad = leads_cli(database_url, "purge", LEADS_RETENTION_DAYS="0")
    assert bad.returncode == 2
    assert "LEADS_RETENTION_DAYS" in bad.stderr


async def test_the_service_purges_once_a_day_across_dispatchers(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    async with serving_app(settings) as client:
        first = await submit(client, lead_of, lead())
        second = await submit(client, lead_of, lead())
    now = TurnClock(datetime(2030, 3, 9, 23, 0, tzinfo=UTC))
    await age(settings, first, now.moment - timedelta(days=731))
    await age(settings, second, now.moment - timedelta(days=729, hours=23, minutes=30))
    async with dispatchers(settings, now, count=2):

        async def first_gone() -> bool:
            return first not in {uid(r["id"]) for r in await query("SELECT id FROM leads")}

        await eventually(first_gone, what="the first purge")
        await now.turns(40)
        now.moment += timedelta(minutes=45)  # the second lead is past its time now: same day
        await now.turns(40)
        assert len(await query("SELECT * FROM leads")) == 1
        assert len(await query("SELECT * FROM audit_log WHERE action = 'purge'")) == 1
        now.moment += timedelta(minutes=30)  # the next (UTC) day
        await eventually(lambda: _empty(query, "leads"), what="the next day's purge")
        await now.turns(40)
    jobs = await query("SELECT job, day FROM daily_jobs ORDER BY day")
    assert [(j["job"], str(j["day"])) for j in jobs] == [
        ("purge", "2030-03-09"),
        ("purge", "2030-03-10"),
    ]
    purges = await query("SELECT actor FROM audit_log WHERE action = 'purge'")
    assert purges == [{"actor": "system"}, {"actor": "system"}]


async def _empty(query: Query, table: str) -> bool:
    return not await query(f"SELECT * FROM {table}")  # noqa: S608
