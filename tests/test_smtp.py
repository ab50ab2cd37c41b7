"""Notifications by SMTP, end to end: POST a lead, a real SMTP server (aiosmtpd) receives it.
Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import SECRET
from tests.mail import INBOX, MailServer, mail_server, make_certificate, smtp_settings
from tests.servers import free_port
from tests.support import eventually, leads_cli, leads_env, outbox_rows, run_leads


@pytest.fixture
def smtp() -> Iterator[MailServer]:
    with mail_server() as server:
        yield server


async def test_new_lead_reaches_the_inbox(make_client, lead, smtp, query, lead_of) -> None:
    client = await make_client(**smtp_settings(smtp))
    body = lead(
        name="Ann Smith",
        email="ann@example.com",
        phone="(202) 555-0143",
        message="My back <script>alert(1)</script> hurts",
        interest="Lower back pain",
        preferred_contact="phone",
    )
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201
    (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    rows = await outbox_rows(query, until="delivered")

    assert sorted(mail.recipients) == ["desk@clinic.example", "owner@clinic.example"]
    msg = mail.message
    assert msg["To"] == "desk@clinic.example, owner@clinic.example"
    assert msg["Reply-To"] == "ann@example.com"
    assert msg["Subject"] == "New enquiry: Learn more about dry needling from Ann"
    assert "hurts" not in msg["Subject"]
    assert msg["Message-ID"] == f"<{uuid.UUID(str(rows[0]['id']))}@clinic.example>"
    text, html = mail.part("plain"), mail.part("html")
    assert "My back <script>alert(1)</script> hurts" in text
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="tel:+12025550143"' in html
    assert 'href="mailto:ann@example.com"' in html
    assert f"/staff/leads/{await lead_of(response.json()['id'])}" in text
    assert rows[0]["attempts"] == 1
    assert rows[0]["delivered_at"] is not None


@pytest.mark.parametrize(
    ("detail", "present", "absent"),
    [
        ("contact", ["Ann", "ann@example.com", "+1 202-555-0143"], ["hurts", "Lower back pain"]),
        ("minimal", ["/staff/leads/"], ["Ann", "ann@example.com", "555-01", "hurts", "Lower back"]),
    ],
)
async def test_detail_levels_keep_health_details_out_of_email(
    make_client, lead, smtp, detail, present, absent
) -> None:
    client = await make_client(**smtp_settings(smtp, notify_detail=detail))
    body = lead(
        name="Ann Smith",
        email="ann@example.com",
        phone="2025550143",
        message="My back hurts",
        interest="Lower back pain",
    )
    assert (await client.post("/api/leads", json=body)).status_code == 201
    (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    whole = mail.raw.decode() + mail.part("plain") + mail.part("html")
    for word in present:
        assert word in mail.part("plain")
    for word in absent:
        assert word not in whole
    if detail == "minimal":
        assert mail.message["Reply-To"] is None


async def test_starttls_with_auth_and_a_self_signed_certificate(
    make_client, lead, query, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_certificate(tmp_path)
    # The standard way to trust a private CA; read when the TLS context is made.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with mail_server(tls=(cert, key), credentials=("leads@clinic.example", "s3cr@t")) as server:
        client = await make_client(
            smtp_url=f"smtp://leads%40clinic.example:s3cr%40t@127.0.0.1:{server.port}"
            "?starttls=require",
            inbox="desk@clinic.example",
        )
        assert (await client.post("/api/leads", json=lead())).status_code == 201
        await asyncio.to_thread(server.wait_for, 1)
        await outbox_rows(query, until="delivered")
        assert server.logins == ["leads@clinic.example"]


async def test_wrong_password_is_a_dead_letter(
    make_client, lead, query, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = make_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with mail_server(tls=(cert, key), credentials=("user", "right")) as server:
        client = await make_client(
            smtp_url=f"smtp://user:wrong@127.0.0.1:{server.port}", inbox="desk@clinic.example"
        )
        await client.post("/api/leads", json=lead())
        rows = await outbox_rows(query, until="dead")
        assert rows[0]["attempts"] == 1
        assert "535" in rows[0]["last_error"]


async def test_a_burst_is_delivered_once_each(make_client, lead, smtp, query) -> None:
    """Deliveries finish while earlier outcomes are being recorded: every one must still be
    recorded, or its lease runs out and the clinic gets the email again."""
    client = await make_client(**smtp_settings(smtp, delivery_timeout_seconds=1))
    # One message at a time, 3 ms each: deliveries end one by one, while the outcomes of
    # those that ended before them are being recorded.
    smtp.on_data = lambda: time.sleep(0.003)
    answers = await asyncio.gather(*(client.post("/api/leads", json=lead()) for _ in range(150)))
    assert [a.status_code for a in answers] == [201] * 150
    await outbox_rows(query, until="delivered", count=150, within=60)
    await asyncio.sleep(3.5)  # longer than a lease (2 x 1 s + 1 s): a lost outcome resends
    rows = await query("SELECT status, attempts FROM outbox")
    assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)] * 150
    assert len(smtp.received) == 150


async def test_temporary_failure_is_retried_until_delivered(make_client, lead, smtp, query) -> None:
    smtp.script = ["451 4.3.0 Try again later", "421 4.7.0 Busy"]
    client = await make_client(**smtp_settings(smtp))
    await client.post("/api/leads", json=lead())
    await asyncio.to_thread(smtp.wait_for, 1)
    rows = await outbox_rows(query, until="delivered")
    assert len(smtp.received) == 1
    assert rows[0]["attempts"] == 3
    assert rows[0]["last_error"].startswith("SMTP 421")


async def test_permanent_failure_is_dead_until_an_operator_retries(
    make_client, lead, smtp, query, database_url: str
) -> None:
    smtp.script = ["550 5.1.1 Mailbox unavailable"]
    client = await make_client(**smtp_settings(smtp))
    await client.post("/api/leads", json=lead())
    rows = await outbox_rows(query, until="dead")
    assert rows[0]["attempts"] == 1
    assert rows[0]["last_error"] == "SMTP 550"
    # Dead letters are not retried by themselves: a later lead is delivered, and only it.
    smtp.script = []
    await client.post("/api/leads", json=lead(name="Later Lead"))
    await outbox_rows(query, until="delivered")
    assert [m.message["Subject"].endswith("from Later") for m in smtp.received] == [True]
    smtp.received.clear()

    done = await asyncio.to_thread(leads_cli, database_url, "outbox", "retry", "--all-dead")
    assert done.returncode == 0, done.stderr
    assert "1 message(s) queued" in done.stdout
    (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    rows = await outbox_rows(query, until="delivered", count=2)
    assert mail.message["Message-ID"].startswith(f"<{uuid.UUID(str(rows[0]['id']))}@")


async def test_returning_visitor_is_announced_as_a_follow_up(make_client, lead, smtp) -> None:
    client = await make_client(**smtp_settings(smtp))
    first = await client.post("/api/leads", json=lead(email="jo@example.com", message="one"))
    again = await client.post("/api/leads", json=lead(email="jo@example.com", message="two"))
    assert first.json()["id"] != again.json()["id"]  # a receipt per submission
    mails = await asyncio.to_thread(smtp.wait_for, 2)
    subjects = sorted(m.message["Subject"] for m in mails)
    assert subjects[0].startswith("Follow-up enquiry:")
    assert subjects[1].startswith("New enquiry:")
    follow_up = next(m for m in mails if m.message["Subject"].startswith("Follow-up"))
    assert "two" in follow_up.part("plain")
    assert mails[0].message["Message-ID"] != mails[1].message["Message-ID"]


async def test_autoreply_only_with_an_email_and_only_once(make_client, lead, smtp, query) -> None:
    client = await make_client(**smtp_settings(smtp, autoreply=True))
    await client.post("/api/leads", json=lead(email="kim@example.com"))
    await client.post("/api/leads", json=lead(email=None, phone="+12025550143"))
    await client.post("/api/leads", json=lead(email="kim@example.com", message="again"))
    # 3 clinic notifications + 1 autoreply (not for the phone-only lead, not for the repeat)
    mails = await asyncio.to_thread(smtp.wait_for, 4)
    # Four messages were queued in all, and each is delivered once (tested on its own).
    rows = await outbox_rows(query, until="delivered", count=4)
    assert sorted(r["kind"] for r in rows).count("autoreply") == 1
    assert len(rows) == 4
    replies = [m for m in smtp.received if m.recipients == ["kim@example.com"]]
    assert len(smtp.received) == 4
    assert len(replies) == 1
    assert replies[0].message["Auto-Submitted"] == "auto-replied"
    assert replies[0].message["Reply-To"] == "desk@clinic.example"
    assert "We have your request" in replies[0].message["Subject"]
    assert all("kim@example.com" not in m.recipients for m in mails if m is not replies[0])


async def test_spam_is_stored_but_never_announced(make_client, lead, smtp, query) -> None:
    client = await make_client(**smtp_settings(smtp, autoreply=True))
    response = await client.post("/api/leads", json=lead(website="http://spam.example"))
    assert response.status_code == 201
    await client.post("/api/leads", json=lead())  # a real one, to know the dispatcher ran
    await asyncio.to_thread(smtp.wait_for, 2)
    await outbox_rows(query, until="delivered", count=2)
    assert len(smtp.received) == 2  # the real lead's notification and its autoreply
    # One row for the spam (its lead); no notification or autoreply is even queued for it.
    kinds = sorted(r["kind"] for r in await query("SELECT kind FROM outbox"))
    assert kinds == ["autoreply", "lead.created"]  # the real lead's two


async def test_no_field_can_add_a_recipient_or_header(make_client, lead, smtp) -> None:
    client = await make_client(**smtp_settings(smtp))
    bad = await client.post(
        "/api/leads", json=lead(email="x@example.com\r\nBcc: thief@evil.example")
    )
    assert bad.status_code == 422
    bad = await client.post("/api/leads", json=lead(name="Eve\nBcc: thief@evil.example"))
    assert bad.status_code == 422
    ok = await client.post(
        "/api/leads",
        json=lead(name='Zoë "Bcc: thief@evil.example" O\'Neil', email="zoe+tag@example.com"),
    )
    assert ok.status_code == 201
    (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    assert sorted(mail.recipients) == ["desk@clinic.example", "owner@clinic.example"]
    assert mail.message["Bcc"] is None
    assert mail.message["Cc"] is None
    assert "Zo" in mail.message["Subject"]


async def test_without_a_channel_the_log_announces_leads_without_personal_details(
    make_client, lead, query, lead_of, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="leads")
    client = await make_client()
    body = lead(
        name="Quentin Privateperson",
        email="quentin@private.example",
        phone="+12025550199",
        message="a private health matter",
    )
    response = await client.post("/api/leads", json=body)
    rows = await outbox_rows(query, until="delivered")
    assert rows[0]["channel"] == "log"
    notices = [
        r for r in caplog.records if r.name == "leads.notify" and r.levelno >= logging.WARNING
    ]
    lead_id = await lead_of(response.json()["id"])
    assert any(lead_id in r.getMessage() for r in notices)
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("Quentin", "Privateperson", "quentin@private", "2025550199", "private health"):
        assert secret not in everything


async def test_a_household_member_on_the_same_phone_keeps_their_own_details(
    make_client, lead, smtp, query, lead_of
) -> None:
    """Matched by phone with no email of their own, a follow-up may come from someone else
    in the household: the enquiry keeps who sent it, and the email says so."""
    client = await make_client(**smtp_settings(smtp))
    mary = await client.post(
        "/api/leads", json=lead(name="Mary Jones", email="mary@example.com", phone="2025550143")
    )
    tom = await client.post(
        "/api/leads",
        json={**lead(name="Tom Jones", phone="2025550143", message="For my knee"), "email": None},
    )
    assert await lead_of(tom.json()["id"]) == await lead_of(mary.json()["id"])
    (enquiry,) = await query("SELECT name, email, phone, message FROM enquiries")
    assert enquiry == {
        "name": "Tom Jones", "email": None, "phone": "+12025550143", "message": "For my knee",
    }  # fmt: skip
    mails = await asyncio.to_thread(smtp.wait_for, 2)
    follow_up = next(m for m in mails if m.message["Subject"].startswith("Follow-up"))
    assert follow_up.message["Subject"].endswith("from Tom")
    assert "Tom Jones" in follow_up.part("plain")


async def test_someone_else_on_the_same_phone_gets_a_lead_of_their_own(
    make_client, lead, smtp, query, lead_of
) -> None:
    """The same phone with another email: maybe the same household, maybe not. A lead of
    their own, marked as a possible duplicate, announced as new, replying to them."""
    client = await make_client(**smtp_settings(smtp))
    mary = await client.post(
        "/api/leads", json=lead(name="Mary Jones", email="mary@example.com", phone="2025550143")
    )
    tom = await client.post(
        "/api/leads",
        json=lead(name="Tom Jones", email="tom@example.org", phone="2025550143",
                  message="For my knee"),
    )  # fmt: skip
    mary_lead, tom_lead = await lead_of(mary.json()["id"]), await lead_of(tom.json()["id"])
    assert tom_lead != mary_lead
    rows = await query("SELECT id, duplicate_of FROM leads WHERE email = 'tom@example.org'")
    assert str(uuid.UUID(str(rows[0]["duplicate_of"]))) == mary_lead
    assert await query("SELECT id FROM enquiries") == []
    mails = await asyncio.to_thread(smtp.wait_for, 2)
    toms = next(m for m in mails if m.message["Subject"].endswith("from Tom"))
    assert toms.message["Subject"].startswith("New enquiry")
    assert toms.message["Reply-To"] == "tom@example.org"
    assert "Tom Jones" in toms.part("plain")
    plain = " ".join(toms.part("plain").split())
    assert "may be the same person as an earlier lead: " in plain
    assert f"/staff/leads/{mary_lead}" in plain
    marys = next(m for m in mails if m.message["Subject"].endswith("from Mary"))
    assert "same person" not in marys.part("plain")


@pytest.mark.parametrize("command", ["check", "serve"])
def test_an_smtp_url_that_cannot_work_stops_the_start_in_one_line(
    tmp_path: Path, command: str
) -> None:
    env = leads_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'leads.db'}",
        secret_key=SECRET,
        smtp_url="smtp://mail.clinic.example:587?starttls=sometimes",
        inbox=INBOX,
    )
    done = run_leads(command, env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "leads: error: LEADS_SMTP_URL: starttls must be require, auto or off"
    ]


async def test_an_unreachable_server_is_recorded_with_where_and_why(
    make_client, lead, query, caplog: pytest.LogCaptureFixture
) -> None:
    """The dead port is named with its cause in the outbox and the log; the password is not."""
    port = free_port()  # nothing listens there
    client = await make_client(
        smtp_url=f"smtp://clinic:s3cr3tpass@127.0.0.1:{port}?starttls=off",
        inbox=INBOX,
        retry_base_seconds=30,
    )
    await client.post("/api/leads", json=lead())

    async def failed() -> dict[str, Any] | None:
        rows = await query("SELECT attempts, last_error FROM outbox")
        return rows[0] if rows and rows[0]["last_error"] else None

    row = await eventually(failed, what="a failed attempt recorded")
    assert row["last_error"] == f"SMTP SMTPConnectError (127.0.0.1:{port}, ConnectionRefusedError)"
    assert "s3cr3tpass" not in row["last_error"]
    assert "s3cr3tpass" not in "\n".join(r.getMessage() for r in caplog.records)


async def test_the_clinic_email_shows_when_in_the_clinics_time_zone(
    make_client, lead, smtp, query
) -> None:
    client = await make_client(**smtp_settings(smtp), timezone="America/New_York")
    response = await client.post("/api/leads", json=lead())
    assert response.status_code == 201
    (mail,) = await asyncio.to_thread(smtp.wait_for, 1)
    (row,) = await query("SELECT created_at FROM leads")
    stored = row["created_at"]  # as the database holds it: UTC, text on SQLite
    utc = (datetime.fromisoformat(stored) if isinstance(stored, str) else stored).replace(
        tzinfo=UTC
    )
    local = utc.astimezone(ZoneInfo("America/New_York"))
    expected = f"{local:%Y-%m-%d %H:%M} {'EDT' if local.dst() else 'EST'}"
    assert f"Received: {expected}" in mail.part("plain").splitlines()
    assert f"<th align=left>Received</th><td>{expected}</td>" in mail.part("html")
    assert f"{utc:%Y-%m-%d %H:%M} UTC" not in mail.part("plain")
