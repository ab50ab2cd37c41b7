"""The daily digest of overdue leads, through a real SMTP server and dispatchers on a clock
the test sets: sent at LEADS_DIGEST_AT and not before, only on opening days, only when a
lead is overdue, naming people by first name only, and exactly once however many
dispatchers share the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update
from sqlmodel import col

from leads.core.vocabulary import LeadStatus
from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.models import Lead
from tests.conftest import LeadOf, Query, make_settings, serving_app
from tests.mail import MailServer, Received, mail_server, smtp_settings
from tests.support import TurnClock, dispatchers, eventually

ZONE = "America/New_York"
SECRET_WORDS = "MY-PRIVATE-KNEE-STORY"


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def digest_settings(database_url: str, smtp: MailServer, **extra: Any) -> Settings:
    return make_settings(
        database_url,
        **smtp_settings(smtp),
        dispatcher="worker",  # the app delivers nothing: only the test's dispatchers do
        timezone=ZONE,
        opening_hours="Mon-Fri 08:00-18:00",
        follow_up_hours=4,
        digest_at="07:30",
        public_url="https://leads.clinic.example",
        **extra,
    )


async def place(
    client: httpx.AsyncClient,
    settings: Settings,
    lead_of: LeadOf,
    body: dict[str, Any],
    created: str,
    **columns: Any,
) -> uuid.UUID:
    """A lead sent through the API, then moved back in time to ``created`` (local)."""
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201, response.text
    lead_id = uuid.UUID(await lead_of(response.json()["id"]))
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            await session.execute(
                update(Lead)
                .where(col(Lead.id) == lead_id)
                .values(created_at=local(created), **columns)
            )
    finally:
        await database.close()
    return lead_id


def digests(server: MailServer) -> list[Received]:
    return [m for m in server.received if "opening hours" in str(m.message["Subject"])]


def private(lead: Callable[..., dict[str, Any]], name: str) -> dict[str, Any]:
    return lead(
        name=name,
        phone="(202) 555-0143",
        message=f"{SECRET_WORDS}: it hurts when I climb stairs",
        interest="Lower back pain",
    )


async def test_the_digest_lists_overdue_leads_at_its_time_by_first_name_only(
    database_url: str, lead: Callable[..., dict[str, Any]], lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = digest_settings(database_url, smtp)
        async with serving_app(settings) as client:
            ann_body = private(lead, "Ann Overdue-Surname")
            ann = await place(client, settings, lead_of, ann_body, "2026-03-10 09:00")
            # Due at 10:00 on Wednesday (two hours on Tuesday, two from opening): not yet.
            await place(client, settings, lead_of, private(lead, "Bob Later"), "2026-03-10 16:00")
            answered = private(lead, "Cat Answered")
            await place(
                client, settings, lead_of, answered, "2026-03-09 10:00", status=LeadStatus.CONTACTED
            )
            spam = private(lead, "Dan Spam")
            await place(client, settings, lead_of, spam, "2026-03-09 10:00", spam=True)

        now = TurnClock(local("2026-03-11 07:29"))  # a Wednesday, a minute early
        async with dispatchers(settings, now):
            await now.turns(20)
            assert await query("SELECT * FROM digests") == []
            assert digests(smtp) == []

            now.moment = local("2026-03-11 07:30")
            await eventually(lambda: _async(digests(smtp)), what="the digest email")

        [sent] = digests(smtp)
        rows = await query("SELECT * FROM outbox WHERE kind = 'digest'")
    assert [(r["lead_id"], r["channel"], r["status"]) for r in rows] == [
        (None, "smtp", "delivered")
    ]
    assert [(str(r["day"]), r["lead_count"]) for r in await query("SELECT * FROM digests")] == [
        ("2026-03-11", 1)
    ]
    assert sent.recipients == ["desk@clinic.example", "owner@clinic.example"]
    assert sent.message["Subject"] == "1 lead waiting over 4 opening hours"
    assert str(uuid.UUID(str(rows[0]["id"]))) in sent.message["Message-ID"]
    text, html = sent.part("plain"), sent.part("html")
    assert "Ann (Learn more about dry needling), waiting 22 hours" in text
    assert f"https://leads.clinic.example/staff/leads/{ann}" in text
    assert f'href="https://leads.clinic.example/staff/leads/{ann}"' in html
    assert "2026-03-11 07:30 EDT" in text
    for content in (text, html, sent.raw.decode()):
        for never in (
            SECRET_WORDS,
            "Overdue-Surname",
            ann_body["email"],
            "555-0143",
            "5550143",
            "Lower back pain",
            "Bob",
            "Cat",
            "Dan",
        ):
            assert never not in content


async def _async(value: Any) -> Any:
    return value or None


async def test_no_digest_on_a_closed_day(
    database_url: str, lead: Callable[..., dict[str, Any]], lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = digest_settings(database_url, smtp)
        async with serving_app(settings) as client:
            await place(client, settings, lead_of, lead(), "2026-03-10 09:00")
        now = TurnClock(local("2026-03-14 07:30"))  # Saturday: closed all day
        async with dispatchers(settings, now):
            await now.turns(20)
            now.moment = local("2026-03-15 18:00")  # Sunday
            await now.turns(20)
        assert await query("SELECT * FROM digests") == []
        assert await query("SELECT * FROM outbox WHERE kind = 'digest'") == []
        assert digests(smtp) == []


async def test_no_email_when_nothing_is_overdue_but_the_day_is_recorded(
    database_url: str, lead: Callable[..., dict[str, Any]], lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = digest_settings(database_url, smtp)
        async with serving_app(settings) as client:
            await place(client, settings, lead_of, lead(), "2026-03-10 16:00")  # due at 10:00
        now = TurnClock(local("2026-03-11 07:45"))
        async with dispatchers(settings, now):

            async def recorded() -> list[dict[str, Any]] | None:
                return await query("SELECT * FROM digests") or None

            [day] = await eventually(recorded, what="the day's digest row")
            # Later that day the lead is overdue, but today's digest was settled.
            now.moment = local("2026-03-11 11:00")
            await now.turns(20)
        assert (str(day["day"]), day["lead_count"]) == ("2026-03-11", 0)
        assert await query("SELECT * FROM outbox WHERE kind = 'digest'") == []
        assert digests(smtp) == []


async def test_several_dispatchers_send_exactly_one_digest(
    database_url: str, lead: Callable[..., dict[str, Any]], lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = digest_settings(database_url, smtp)
        async with serving_app(settings) as client:
            for hour in ("09", "10", "11"):
                await place(client, settings, lead_of, lead(), f"2026-03-09 {hour}:00")
        now = TurnClock(local("2026-03-11 07:29"))
        async with dispatchers(settings, now, count=3):
            await now.turns(10)
            now.moment = local("2026-03-11 07:30")  # all three see it at once
            await eventually(lambda: _async(digests(smtp)), what="the digest email")
            await now.turns(60)
            # A server started later that day finds the digest done.
            async with dispatchers(settings, now):
                await now.turns(20)
        assert len(digests(smtp)) == 1
        assert digests(smtp)[0].message["Subject"] == "3 leads waiting over 4 opening hours"
        assert len(await query("SELECT * FROM outbox WHERE kind = 'digest'")) == 1
        assert len(await query("SELECT * FROM digests")) == 1


async def test_the_list_is_read_when_the_digest_is_sent_not_when_it_was_queued(
    database_url: str, lead: Callable[..., dict[str, Any]], lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        smtp.script = ["451 try again later"]  # the first attempt fails
        settings = digest_settings(database_url, smtp)
        async with serving_app(settings) as client:
            eve = await place(client, settings, lead_of, lead(name="Eve A"), "2026-03-09 09:00")
            await place(client, settings, lead_of, lead(name="Fay B"), "2026-03-09 10:00")
        now = TurnClock(local("2026-03-11 07:30"))
        async with dispatchers(settings, now):

            async def failed_once() -> list[dict[str, Any]] | None:
                rows = await query("SELECT * FROM outbox WHERE kind = 'digest'")
                return rows if rows and rows[0]["last_error"] else None

            await eventually(failed_once, what="the digest's first attempt")
            # Eve is answered before the retry: the digest sent then no longer lists her.
            database = Database.from_settings(settings)
            async with database.writing() as session:
                await session.execute(
                    update(Lead).where(col(Lead.id) == eve).values(status=LeadStatus.CONTACTED)
                )
            await database.close()
            now.moment = local("2026-03-11 08:30")  # the retry comes due
            await eventually(lambda: _async(digests(smtp)), what="the retried digest")
        [sent] = digests(smtp)
    assert sent.message["Subject"] == "1 lead waiting over 4 opening hours"
    assert "Fay (Learn more about dry needling), waiting 46 hours" in sent.part("plain")
    assert "Eve" not in sent.part("plain")
    [(day, count)] = [
        (str(r["day"]), r["lead_count"]) for r in await query("SELECT * FROM digests")
    ]
    assert (day, count) == ("2026-03-11", 2)  # what was overdue when it was queued


def test_a_digest_needs_an_email_channel(tmp_path: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", digest_at="07:30")
    assert "LEADS_DIGEST_AT needs an email channel" in str(caught.value)
