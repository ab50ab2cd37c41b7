"""Consent, through HTTP and real processes, on SQLite and PostgreSQL: every wording a form
showed kept by version, a version reused for new words refused at start, the version, time
and page of each lead and enquiry, and withdrawal through the staff API: recorded with who
and when, on the timeline and in the audit log, and no autoreply or digest naming the person
after it (real SMTP)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import event, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from leads.core.forms import load_forms
from leads.core.vocabulary import TokenScope
from leads.errors import ConfigurationError
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.models import Lead
from tests.conftest import AppClient, LeadOf, Query, make_settings, serving_app
from tests.mail import mail_server, smtp_settings
from tests.support import eventually, leads_cli

Body = Callable[..., dict[str, Any]]
FIRST = "I agree that Northside may contact me about my knee."
SECOND = "I agree that Northside may keep these details and contact me about my knee."
ZONE = "America/New_York"


def forms_file(tmp_path: Path, consent: str, version: str | None = None) -> Path:
    path = tmp_path / f"forms-{uuid.uuid4().hex[:8]}.toml"
    line = f'consent_version = "{version}"\n' if version else ""
    path.write_text(f'[forms.knee]\ntitle = "Knee pain"\nconsent = "{consent}"\n{line}')
    return path


async def make_token(database_url: str, scope: TokenScope) -> dict[str, str]:
    database = Database.from_settings(make_settings(database_url))
    try:
        async with database.writing() as session:
            token = await create_token(
                session=session,
                name=f"{scope}-bot",
                scope=scope,
                actor="cli",
                now=datetime.now(UTC),
            )
    finally:
        await database.close()
    return {"Authorization": f"Bearer {token}"}


async def submit(client: httpx.AsyncClient, body: dict[str, Any], lead_of: LeadOf) -> str:
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


async def versions(query: Query) -> list[tuple[str, str, str]]:
    rows = await query("SELECT * FROM consent_versions ORDER BY first_shown_at, version")
    return [(r["form"], r["version"], r["text"]) for r in rows]


# -- wordings and versions ---------------------------------------------------------------


async def test_each_wording_is_kept_by_version_when_a_form_changes_it(
    make_client: AppClient, tmp_path: Path, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    before = await make_client(forms_file=forms_file(tmp_path, FIRST))
    first = await submit(before, lead(form="knee"), lead_of)
    [(form, old_version, text)] = await versions(query)
    assert (form, text) == ("knee", FIRST)
    assert old_version.startswith("sha256:")

    after = await make_client(forms_file=forms_file(tmp_path, SECOND))  # the same database
    second = await submit(after, lead(form="knee"), lead_of)
    await submit(after, lead(form="knee"), lead_of)  # a wording on file is not added again
    await submit(before, lead(form="knee"), lead_of)  # nor the old one, still shown there
    stored = await versions(query)
    assert stored[0] == ("knee", old_version, FIRST)  # kept as it was
    assert [(f, t) for f, _v, t in stored] == [("knee", FIRST), ("knee", SECOND)]
    rows = await query("SELECT id, consent_version, consent_text FROM leads")
    by_id = {str(r["id"]).replace("-", ""): r for r in rows}
    assert by_id[first.replace("-", "")]["consent_version"] == old_version
    assert by_id[second.replace("-", "")]["consent_version"] == stored[1][1]
    assert by_id[second.replace("-", "")]["consent_text"] == SECOND


async def test_a_server_puts_each_wording_on_file_once(
    make_client: AppClient, tmp_path: Path, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    """Its writer remembers what its commits put on file: later submissions with the same
    wording cost no statement for it, and another form's wording is still put on file."""
    path = forms_file(tmp_path, FIRST)
    path.write_text(path.read_text() + f'[forms.back]\ntitle = "Back pain"\nconsent = "{SECOND}"\n')
    client = await make_client(forms_file=path)
    inserts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("INSERT INTO consent_versions"):
            inserts.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            await submit(client, lead(form="knee"), lead_of)
        assert len(inserts) == 1
        await submit(client, lead(form="back"), lead_of)
        assert len(inserts) == 2
        await submit(client, lead(form="back"), lead_of)
        assert len(inserts) == 2
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert [(form, text) for form, _v, text in await versions(query)] == [
        ("knee", FIRST),
        ("back", SECOND),
    ]


async def test_a_version_reused_for_other_wording_is_refused_at_start(
    database_url: str, tmp_path: Path, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    async with serving_app(
        make_settings(database_url, forms_file=forms_file(tmp_path, FIRST, "2025-01"))
    ) as client:
        await submit(client, lead(form="knee"), lead_of)

    changed = make_settings(database_url, forms_file=forms_file(tmp_path, SECOND, "2025-01"))
    with pytest.raises(ConfigurationError, match="form 'knee': consent_version '2025-01'"):
        async with serving_app(changed):
            pass

    same = make_settings(database_url, forms_file=forms_file(tmp_path, FIRST, "2025-01"))
    bumped = make_settings(database_url, forms_file=forms_file(tmp_path, SECOND, "2025-02"))
    async with serving_app(same):
        pass  # the same words under the same version: fine
    async with serving_app(bumped) as client:
        await submit(client, lead(form="knee"), lead_of)
    assert await versions(query) == [("knee", "2025-01", FIRST), ("knee", "2025-02", SECOND)]


@pytest.mark.slow
async def test_leads_serve_refuses_a_reused_version_in_one_line(
    database_url: str, tmp_path: Path, lead: Body, lead_of: LeadOf
) -> None:
    shown = make_settings(database_url, forms_file=forms_file(tmp_path, FIRST, "v1"))
    async with serving_app(shown) as client:
        await submit(client, lead(form="knee"), lead_of)

    changed = str(forms_file(tmp_path, SECOND, "v1"))
    done = await asyncio.to_thread(leads_cli, database_url, "serve", LEADS_FORMS_FILE=changed)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "form 'knee': consent_version 'v1'" in line


# -- what each lead and enquiry records ---------------------------------------------------


async def test_leads_and_enquiries_record_the_version_time_and_page_they_were_shown(
    client: httpx.AsyncClient, database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    read = await make_token(database_url, TokenScope.READ)
    email = "ann@example.com"
    page = "https://clinic.example/knees"
    lead_id = await submit(client, lead(email=email, page_url=page), lead_of)
    await submit(client, lead(email=email, page_url=f"{page}?again"), lead_of)  # an enquiry

    body = (await client.get(f"/api/staff/leads/{lead_id}", headers=read)).json()
    [(_form, version, text)] = await versions(query)
    assert body["consent"]["version"] == version
    assert body["consent"]["text"] == text
    assert body["consent"]["page_url"] == page
    assert body["consent"]["at"] == body["created_at"]
    [enquiry] = body["enquiries"]
    assert enquiry["consent_version"] == version
    assert enquiry["page_url"] == f"{page}?again"
    assert enquiry["created_at"] >= body["created_at"]
    assert body["consent_withdrawn_at"] is None
    assert body["consent_withdrawn_by"] is None


# -- withdrawal ---------------------------------------------------------------------------


async def test_withdrawal_is_recorded_once_with_who_and_when(
    client: httpx.AsyncClient, database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    write = await make_token(database_url, TokenScope.WRITE)
    read = await make_token(database_url, TokenScope.READ)
    lead_id = await submit(client, lead(), lead_of)
    url = f"/api/staff/leads/{lead_id}/withdraw-consent"

    refused = await client.post(url, headers=read)
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_allowed"
    assert (await client.post(url)).status_code == 401
    for unknown in (uuid.uuid4(), "not-an-id"):
        missing = await client.post(f"/api/staff/leads/{unknown}/withdraw-consent", headers=write)
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["code"] == "lead_not_found"

    done = await client.post(url, headers=write)
    assert done.status_code == 200, done.text
    assert done.headers["cache-control"] == "no-store"
    body = done.json()
    assert body["consent_withdrawn_by"] == "token:write-bot"
    withdrawn_at = body["consent_withdrawn_at"]
    assert withdrawn_at is not None
    assert done.headers["etag"] == f'"{body["version"]}"'
    [entry] = [e for e in body["timeline"] if e["kind"] == "consent_withdrawn"]
    assert entry["actor"] == "token:write-bot"
    assert entry["at"] == withdrawn_at

    again = await client.post(url, headers=write)  # a second call changes nothing
    assert again.status_code == 200
    assert again.json()["consent_withdrawn_at"] == withdrawn_at
    assert again.json()["version"] == body["version"]
    shown = (await client.get(f"/api/staff/leads/{lead_id}", headers=read)).json()
    assert shown["consent_withdrawn_at"] == withdrawn_at
    assert shown["consent_withdrawn_by"] == "token:write-bot"
    assert [e["kind"] for e in shown["timeline"]].count("consent_withdrawn") == 1

    audit = await query("SELECT actor, action, lead_id, detail FROM audit_log ORDER BY id")
    [record] = [row for row in audit if row["action"] == "consent_withdrawn"]
    assert record["actor"] == "token:write-bot"
    assert str(record["lead_id"]).replace("-", "") == lead_id.replace("-", "")
    assert lead()["name"] not in str(record["detail"])


@contextlib.asynccontextmanager
async def dispatcher(settings: Settings, clock: Callable[[], datetime]) -> AsyncIterator[None]:
    """A dispatcher of the test's own (the apps run none: LEADS_DISPATCHER=worker)."""
    async with httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        running = Dispatcher(
            settings, database, load_forms(None), http, poll_seconds=0.02, clock=clock
        )
        running.start()
        try:
            yield
        finally:
            await running.stop()
            await database.close()


async def test_no_autoreply_reaches_a_person_who_withdrew(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = make_settings(
            database_url, **smtp_settings(smtp, autoreply=True), dispatcher="worker"
        )
        async with serving_app(settings) as client:
            write = await make_token(database_url, TokenScope.WRITE)
            person = lead(email="ann@example.com")
            lead_id = await submit(client, person, lead_of)
            [queued] = await query("SELECT * FROM outbox WHERE kind = 'autoreply'")
            assert queued["status"] == "pending"

            done = await client.post(f"/api/staff/leads/{lead_id}/withdraw-consent", headers=write)
            assert done.status_code == 200
            [stopped] = await query("SELECT * FROM outbox WHERE kind = 'autoreply'")
            assert (stopped["status"], stopped["last_error"]) == ("dead", "consent withdrawn")
            [event] = [e for e in done.json()["timeline"] if e["kind"] == "consent_withdrawn"]
            assert event["autoreplies_stopped"] == 1

            # Retried by staff: the delivery itself refuses it.
            message_id = uuid.UUID(str(stopped["id"]))
            resend = f"/api/staff/leads/{lead_id}/messages/{message_id}/resend"
            assert (await client.post(resend, headers=write)).status_code == 200
            [retried] = await query("SELECT * FROM outbox WHERE kind = 'autoreply'")
            assert retried["status"] == "pending"

        async with dispatcher(settings, lambda: datetime.now(UTC)):

            async def settled() -> list[dict[str, Any]] | None:
                rows = await query("SELECT kind, status, last_error, attempts FROM outbox")
                return rows if all(r["status"] != "pending" for r in rows) else None

            rows = await eventually(settled, what="every message delivered or dead")
    outcome = {r["kind"]: (r["status"], r["last_error"]) for r in rows}
    assert outcome == {
        "lead.created": ("delivered", None),
        "autoreply": ("dead", "consent withdrawn"),
    }
    assert [r["attempts"] for r in rows if r["kind"] == "autoreply"] == [1]  # tried, refused
    assert len(smtp.received) == 1  # the clinic's notification only
    assert all(person["email"] not in m.recipients for m in smtp.received)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


async def test_the_digest_leaves_out_a_person_who_withdrew(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = make_settings(
            database_url,
            **smtp_settings(smtp),
            dispatcher="worker",
            timezone=ZONE,
            opening_hours="Mon-Fri 08:00-18:00",
            follow_up_hours=4,
            digest_at="07:30",
        )
        async with serving_app(settings) as client:
            write = await make_token(database_url, TokenScope.WRITE)
            ann = await submit(client, lead(name="Ann Keeps"), lead_of)
            bob = await submit(client, lead(name="Bob Withdrew"), lead_of)
            database = Database.from_settings(settings)
            try:
                async with database.writing() as session:
                    await session.execute(
                        update(Lead)
                        .where(col(Lead.id).in_([uuid.UUID(ann), uuid.UUID(bob)]))
                        .values(created_at=local("2026-03-10 09:00"))  # overdue by Wednesday
                    )
            finally:
                await database.close()
            url = f"/api/staff/leads/{bob}/withdraw-consent"
            assert (await client.post(url, headers=write)).status_code == 200

        async def digest_sent() -> list[Any] | None:
            found = [m for m in smtp.received if "opening hours" in str(m.message["Subject"])]
            return found or None

        async with dispatcher(settings, lambda: local("2026-03-11 07:30")):
            [sent] = await eventually(digest_sent, what="the digest email")
    assert sent.message["Subject"] == "1 lead waiting over 4 opening hours"
    text = sent.part("plain")
    assert "Ann (" in text
    assert "Bob" not in sent.raw.decode()
    [day] = await query("SELECT lead_count FROM digests")
    assert day["lead_count"] == 1
