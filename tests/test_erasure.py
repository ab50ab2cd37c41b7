"""Erasure and the subject export, on SQLite and PostgreSQL: `leads erase` and
POST /api/staff/erasures find a person as a returning visitor is found (email in any case,
phone in any format), remove every lead and enquiry of theirs with its timeline,
notifications and keys (checked table by table with SQL), keep the audit log without their
leads' ids, and leave one `erasure` entry that does not name them; a notification not yet
sent is never sent; `leads export-subject` prints everything held about them."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import update
from sqlmodel import col

from leads.core.forms import load_forms
from leads.core.vocabulary import Role, TokenScope
from leads.notify.dispatcher import Dispatcher
from leads.settings import Settings
from leads.staff.accounts import add_user
from leads.staff.tokens import create_token
from leads.storage.database import Database
from leads.storage.models import Enquiry, Lead
from tests.conftest import LeadOf, Query, make_settings, serving_app
from tests.mail import mail_server, smtp_settings
from tests.support import eventually, leads_cli

Body = Callable[..., dict[str, Any]]
PASSWORD = "correct horse battery"
PROBLEM = "application/problem+json"
ADA = "Ada.Byron@Example.com"
ADA_PHONE = "+12025550143"
TABLES = ("leads", "enquiries", "outbox", "lead_events", "idempotency_keys", "audit_log")


def uid(value: Any) -> str:
    return str(uuid.UUID(str(value)))


async def submit(
    client: httpx.AsyncClient, lead_of: LeadOf, body: dict[str, Any], **headers: str
) -> str:
    response = await client.post("/api/leads", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


async def use(settings: Settings, use_case: Any, **arguments: Any) -> Any:
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            return await use_case(session=session, now=datetime.now(UTC), **arguments)
    finally:
        await database.close()


async def token(settings: Settings, scope: TokenScope) -> dict[str, str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    value = await use(settings, create_token, name=name, scope=scope, actor="cli")
    return {"Authorization": f"Bearer {value}"}


async def sign_in(
    client: httpx.AsyncClient, settings: Settings, query: Query, email: str, role: Role
) -> dict[str, str]:
    """Sign in through the sign-in page; the CSRF header the session's changes need."""
    await use(settings, add_user, email=email, password=PASSWORD, role=role, actor="cli")
    page = await client.get("/staff/login")
    found = re.search(r'name="login_token" value="([^"]*)"', page.text)
    assert found, page.text
    data = {"login_token": found.group(1), "email": email, "password": PASSWORD}
    assert (await client.post("/staff/login", data=data)).status_code == 303
    rows = await query(
        "SELECT s.csrf_token FROM staff_sessions s JOIN users u ON u.id = s.user_id "
        "WHERE u.email = :email",
        email=email,
    )
    return {"X-CSRF-Token": rows[0]["csrf_token"]}


async def misfile(settings: Settings, enquiry_lead: str, email: str | None) -> None:
    """File a submission of Ada's under another person's lead, as a household's shared phone
    can: the enquiry under ``enquiry_lead`` carries her address."""
    database = Database.from_settings(settings)
    try:
        async with database.writing() as session:
            await session.execute(
                update(Enquiry)
                .where(col(Enquiry.lead_id) == uuid.UUID(enquiry_lead))
                .values(email=email, name="Ada")
            )
    finally:
        await database.close()


def counts_printed(stdout: str) -> dict[str, int]:
    return {name: int(n) for name, n in re.findall(r"^([a-z ]+): (\d+)$", stdout, re.MULTILINE)}


async def everything(query: Query) -> dict[str, list[dict[str, Any]]]:
    return {t: await query(f"SELECT * FROM {t}") for t in TABLES}  # noqa: S608


def mentions_ada(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that name Ada, her address or her number (ids are lowercase hex: never these)."""
    return [r for r in rows if re.search(r"Ada|[Bb][Yy][Rr][Oo][Nn]|2025550143", str(r))]


async def place_ada_and_others(
    client: httpx.AsyncClient, settings: Settings, lead: Body, lead_of: LeadOf, query: Query
) -> dict[str, str]:
    """Ada's lead (with a later enquiry, a note, a view, an idempotency key), Bob's lead with
    an enquiry of Ada's filed under it, and Cy's lead, which nothing here touches."""
    ada_body = lead(name="Ada Byron", email=ADA, phone="(202) 555-0143", message="my knee")
    ada = await submit(client, lead_of, ada_body, **{"Idempotency-Key": "ada-1"})
    assert await submit(client, lead_of, {**ada_body, "message": "still my knee"}) == ada
    write = await token(settings, TokenScope.WRITE)
    note = await client.post(
        f"/api/staff/leads/{ada}/notes", json={"text": "Ada prefers mornings"}, headers=write
    )
    assert note.status_code == 201
    assert (await client.get(f"/api/staff/leads/{ada}", headers=write)).status_code == 200
    bob_body = lead(name="Bob Brown", email="bob@example.org", message="my back")
    bob = await submit(client, lead_of, bob_body)
    assert await submit(client, lead_of, {**bob_body, "message": "from Ada, his wife"}) == bob
    await misfile(settings, bob, "ADA.BYRON@example.COM")
    cy = await submit(client, lead_of, lead(name="Cy Young", email="cy@example.net"))
    return {"ada": ada, "bob": bob, "cy": cy}


async def test_erasing_by_email_in_another_case_removes_every_trace(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    async with serving_app(settings) as client:
        ids = await place_ada_and_others(client, settings, lead, lead_of, query)
    before = await everything(query)
    ada_outbox = [r for r in before["outbox"] if uid(r["lead_id"]) == ids["ada"]]
    stray = [e for e in before["enquiries"] if uid(e["lead_id"]) == ids["bob"]]
    stray_outbox = [r for r in before["outbox"] if r["enquiry_id"] == stray[0]["id"]]
    expected = {
        "leads": 1,
        "enquiries": 2,  # Ada's later one, and the one filed under Bob's lead
        "outbox messages": len(ada_outbox) + len(stray_outbox),
        "timeline entries": 1,
        "idempotency keys": 1,
    }
    assert ada_outbox
    assert stray_outbox
    assert mentions_ada(before["leads"])  # the check below can see her
    assert mentions_ada(before["enquiries"])

    dry = leads_cli(database_url, "erase", "--email", "ada.byron@EXAMPLE.com", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "nothing was removed" in dry.stdout.splitlines()[0]
    assert counts_printed(dry.stdout) == expected
    assert await everything(query) == before

    done = leads_cli(database_url, "erase", "--email", "ada.byron@EXAMPLE.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "removed:"
    assert counts_printed(done.stdout) == expected
    after = await everything(query)
    for table in ("leads", "enquiries", "lead_events", "idempotency_keys"):
        assert mentions_ada(after[table]) == [], table
    assert {uid(r["id"]) for r in after["leads"]} == {ids["bob"], ids["cy"]}
    assert after["enquiries"] == []  # Bob's only enquiry was Ada's
    assert after["lead_events"] == []
    assert after["idempotency_keys"] == []
    gone = {r["id"] for r in ada_outbox + stray_outbox}
    assert [r for r in after["outbox"] if r["id"] in gone] == []
    assert len(after["outbox"]) == len(before["outbox"]) - len(gone)
    [bob] = [r for r in after["leads"] if uid(r["id"]) == ids["bob"]]
    assert bob["enquiry_count"] == 1
    # The audit log keeps every entry; none names Ada's lead, and the erasure names no one.
    assert len(after["audit_log"]) == len(before["audit_log"]) + 1
    assert {r["lead_id"] for r in after["audit_log"]} == {None}
    [erasure] = [r for r in after["audit_log"] if r["action"] == "erasure"]
    assert mentions_ada([erasure]) == []
    detail = (
        erasure["detail"] if isinstance(erasure["detail"], dict) else json.loads(erasure["detail"])
    )
    assert detail == {"by": "email", **{k.replace(" ", "_"): n for k, n in expected.items()}}
    assert erasure["actor"] == "cli"

    again = leads_cli(database_url, "erase", "--email", ADA)
    assert counts_printed(again.stdout) == dict.fromkeys(expected, 0)


async def test_erasing_by_phone_reads_it_as_the_intake_does(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker", default_region="US")
    async with serving_app(settings) as client:
        first = await submit(client, lead_of, lead(email=None, phone="+1 202 555 0143"))
        other_email = await submit(client, lead_of, lead(phone="202.555.0143"))
        kept = await submit(client, lead_of, lead(phone="(202) 555-0199"))
    assert first != other_email
    done = leads_cli(database_url, "erase", "--phone", "(202) 555-0143")
    assert done.returncode == 0, done.stderr
    assert counts_printed(done.stdout)["leads"] == 2
    assert [uid(r["id"]) for r in await query("SELECT id FROM leads")] == [kept]
    assert await query("SELECT * FROM leads WHERE phone = :p", p=ADA_PHONE) == []
    [entry] = await query("SELECT detail FROM audit_log WHERE action = 'erasure'")
    assert "555" not in str(entry)

    for args in (("--phone", "12"), ("--email", "not-an-address")):
        bad = leads_cli(database_url, "erase", *args)
        assert bad.returncode == 2
        assert bad.stderr.startswith("leads: error: " + args[0])
    both = leads_cli(database_url, "erase", "--email", ADA, "--phone", ADA_PHONE)
    assert both.returncode == 2
    assert leads_cli(database_url, "erase").returncode == 2


@contextlib.asynccontextmanager
async def dispatcher(settings: Settings) -> AsyncIterator[None]:
    async with httpx.AsyncClient() as http:
        database = Database.from_settings(settings)
        running = Dispatcher(settings, database, load_forms(None), http, poll_seconds=0.02)
        running.start()
        try:
            yield
        finally:
            await running.stop()
            await database.close()


async def test_a_notification_waiting_to_be_sent_is_never_sent_after_erasure(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    with mail_server() as smtp:
        settings = make_settings(database_url, dispatcher="worker", **smtp_settings(smtp))
        async with serving_app(settings) as client:
            await submit(client, lead_of, lead(name="Ada Byron", email=ADA))
            assert len(await query("SELECT * FROM outbox WHERE status = 'pending'")) == 1
            assert leads_cli(database_url, "erase", "--email", ADA).returncode == 0
            assert await query("SELECT * FROM outbox") == []
            async with dispatcher(settings):
                await submit(client, lead_of, lead(name="Cy Young"))

                async def delivered() -> bool:
                    rows = await query("SELECT status FROM outbox")
                    return bool(rows) and all(r["status"] == "delivered" for r in rows)

                await eventually(delivered, what="Cy's notification")
        sent = [m.part("plain") for m in smtp.received]
        assert sent  # Cy's
        for text in sent:
            assert "Cy Young" in text
            assert mentions_ada([{"text": text}]) == []


async def test_the_erasures_endpoint_is_for_admins_only(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    async with serving_app(settings) as client:
        ids = await place_ada_and_others(client, settings, lead, lead_of, query)
        body = {"email": "ADA.byron@example.com"}
        assert (await client.post("/api/staff/erasures", json=body)).status_code == 401
        for scope in TokenScope:
            refused = await client.post(
                "/api/staff/erasures", json=body, headers=await token(settings, scope)
            )
            assert refused.status_code == 403
            assert refused.headers["content-type"] == PROBLEM
        staff = await sign_in(client, settings, query, "desk@clinic.example", Role.STAFF)
        refused = await client.post("/api/staff/erasures", json=body, headers=staff)
        assert refused.status_code == 403
        assert refused.json()["code"] == "not_allowed"
        admin = await sign_in(client, settings, query, "owner@clinic.example", Role.ADMIN)
        assert (await client.post("/api/staff/erasures", json=body)).status_code == 403  # CSRF

        async def problem(payload: Any) -> dict[str, str]:
            response = await client.post("/api/staff/erasures", json=payload, headers=admin)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == PROBLEM
            return {e["field"]: e["code"] for e in response.json()["errors"]}

        assert await problem({}) == {"email": "required"}
        assert await problem({"email": ADA, "phone": ADA_PHONE}) == {"phone": "one_of"}
        assert await problem({"email": 7}) == {"email": "invalid_type"}
        assert await problem({"email": "nobody"}) == {"email": "invalid_email"}
        assert await problem({"phone": "12"}) == {"phone": "invalid_phone"}
        assert await problem({"name": "Ada"}) == {"name": "unknown_field"}
        assert await problem({"email": ADA, "dry_run": "yes"}) == {"dry_run": "invalid_type"}

        dry = await client.post(
            "/api/staff/erasures", json={**body, "dry_run": True}, headers=admin
        )
        assert dry.status_code == 200
        assert dry.json()["leads"] == 1
        assert dry.json()["dry_run"] is True
        assert ids["ada"] in {uid(r["id"]) for r in await query("SELECT id FROM leads")}
        done = await client.post("/api/staff/erasures", json=body, headers=admin)
        assert done.status_code == 200, done.text
        assert done.headers["cache-control"] == "no-store"
        answer = done.json()
        assert answer["leads"] == 1
        assert answer["enquiries"] == 2
        assert answer["timeline_entries"] == 1
        assert answer["idempotency_keys"] == 1
        assert answer["outbox_messages"] >= 2
        assert answer["dry_run"] is False
        missing = await client.get(f"/api/staff/leads/{ids['ada']}", headers=admin)
        assert missing.status_code == 404
    [entry] = await query("SELECT actor, address, detail FROM audit_log WHERE action = 'erasure'")
    assert entry["actor"] == "user:owner@clinic.example"
    assert mentions_ada([entry]) == []


async def test_the_subject_export_holds_everything_about_the_person(
    database_url: str, lead: Body, lead_of: LeadOf, query: Query
) -> None:
    settings = make_settings(database_url, dispatcher="worker")
    async with serving_app(settings) as client:
        ids = await place_ada_and_others(client, settings, lead, lead_of, query)
    done = leads_cli(database_url, "export-subject", "--email", "ADA.BYRON@example.com")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["subject"] == {"email": "ada.byron@example.com"}
    [ada] = document["leads"]
    assert ada["id"] == ids["ada"]
    assert set(Lead.model_fields) <= set(ada)
    assert ada["message"] == "my knee"
    assert ada["phone"] == ADA_PHONE
    messages = sorted(e["message"] for e in document["enquiries"])
    assert messages == ["from Ada, his wife", "still my knee"]
    assert len(document["consents"]) == 3
    for consent in document["consents"]:
        assert consent["wording"]
        assert consent["version"]
        assert consent["at"]
        assert set(consent) == {"of", "id", "wording", "version", "at", "page"}
    [note] = [e for e in document["timeline"] if e["kind"] == "note"]
    assert note["text"] == "Ada prefers mornings"
    assert document["notifications"]
    for message in document["notifications"]:
        assert set(message) == {
            "id", "lead_id", "enquiry_id", "kind", "channel", "status", "attempts",
            "created_at", "next_attempt_at", "delivered_at",
        }  # fmt: skip
    assert "Bob" not in done.stdout
    assert "Cy Young" not in done.stdout
    [entry] = await query("SELECT actor, detail FROM audit_log WHERE action = 'subject_exported'")
    assert entry["actor"] == "cli"
    assert mentions_ada([entry]) == []
    nobody = leads_cli(database_url, "export-subject", "--phone", "+12025550100")
    assert nobody.returncode == 0
    assert json.loads(nobody.stdout)["leads"] == []
