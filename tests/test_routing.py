"""Each form's leads to its own people: a form's `inbox`, `webhook_urls` and `sms_to` in
LEADS_FORMS_FILE, through a real SMTP server, real HTTP receivers and the real `leads`
command. A form without them uses the settings' recipients, key by key; the digest and the
alerts stay with LEADS_INBOX; a URL taken out of the forms file is not posted to."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.models import Lead
from leads.storage.types import utcnow
from tests.conftest import LeadOf, Query, make_settings, serving_app
from tests.mail import MailServer, Received, mail_server, smtp_settings
from tests.receivers import Receiver, webhook_receiver
from tests.support import TurnClock, dispatchers, eventually, leads_cli, leads_env, run_leads

WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
GLOBAL_INBOX = ["desk@clinic.example", "owner@clinic.example"]  # tests/mail.py's INBOX
SPORTS_INBOX = ["sports@clinic.example", "lee@clinic.example"]
ALERT_SUBJECT = "leads: notifications are not getting through"

# -- real webhook receivers ----------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


def forms_at(receiver: Receiver, path: str) -> list[str]:
    """The forms of the leads posted to ``path``, each signature checked."""
    return [d.payload(WEBHOOK_SECRET)["data"]["form"] for d in receiver.to(path)]


# -- helpers -------------------------------------------------------------------------------


def forms_file(tmp_path: Path, receiver: Receiver, **sports: Any) -> Path:
    """Three forms of its own beside the built-in dry-needling (which has no routing):
    sports (its inbox and webhook), massage (its inbox as one text, no webhooks) and back
    (an inbox only, so the settings' webhooks)."""
    forms = {
        "sports": {
            "title": "Sports injuries",
            "inbox": ["sports@clinic.example", "Dr Lee <lee@clinic.example>"],
            "webhook_urls": [receiver.url("/sports")],
            **sports,
        },
        "massage": {"title": "Massage", "inbox": "massage@clinic.example", "webhook_urls": []},
        "back": {"title": "Back pain", "inbox": ["back@clinic.example"]},
    }
    path = tmp_path / "forms.json"
    path.write_text(json.dumps({"forms": forms}))
    return path


def routed_settings(
    database_url: str, smtp: MailServer, receiver: Receiver, forms: Path, **extra: Any
) -> Settings:
    return make_settings(
        database_url,
        **smtp_settings(smtp),
        webhook_urls=receiver.url("/global"),
        webhook_secret=WEBHOOK_SECRET,
        forms_file=str(forms),
        public_url="https://leads.clinic.example",
        **extra,
    )


async def submit(client: httpx.AsyncClient, body: dict[str, Any], lead_of: LeadOf) -> str:
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201, response.text
    return await lead_of(response.json()["id"])


def emails(server: MailServer, count: int) -> Callable[[], Any]:
    async def probe() -> list[Received] | None:
        with server.lock:
            found = [m for m in server.received if "enquiry" in str(m.message["Subject"])]
        return found if len(found) >= count else None

    return probe


def by_subject(received: list[Received]) -> dict[str, list[str]]:
    """Each clinic email's form title (from its subject) and the envelope's recipients."""
    return {
        str(m.message["Subject"]).split(": ")[1].split(" from ")[0]: m.recipients for m in received
    }


# -- the tests -----------------------------------------------------------------------------


async def test_each_forms_leads_reach_only_its_own_inbox_and_webhooks(
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    lead: Callable[..., dict[str, Any]],
    lead_of: LeadOf,
    query: Query,
) -> None:
    with mail_server() as smtp:
        forms = forms_file(tmp_path, receiver)
        settings = routed_settings(database_url, smtp, receiver, forms)
        async with serving_app(settings) as client:
            for slug in ("sports", "massage", "back", "dry-needling"):
                await submit(client, lead(form=slug), lead_of)
            received = await eventually(emails(smtp, 4), what="four clinic emails")

            async def webhooks() -> bool:
                return len(receiver.everything()) >= 3

            await eventually(webhooks, what="three webhooks")
            rows = await eventually(
                lambda: _all_sent(query, 7), what="seven notifications delivered"
            )
        assert by_subject(received) == {
            "Sports injuries": SPORTS_INBOX,
            "Massage": ["massage@clinic.example"],
            "Back pain": ["back@clinic.example"],
            "Learn more about dry needling": GLOBAL_INBOX,
        }
        assert len(smtp.received) == 4  # every row is delivered: nothing else is coming
    # Its own URL for sports; none for massage; the settings' for the others.
    assert forms_at(receiver, "/sports") == ["sports"]
    assert sorted(forms_at(receiver, "/global")) == ["back", "dry-needling"]
    assert len(receiver.everything()) == 3
    targets = sorted((r["channel"], r["target"] or "") for r in rows)
    assert targets == sorted(
        [
            ("smtp", "sports@clinic.example,Dr Lee <lee@clinic.example>"),
            ("smtp", "massage@clinic.example"),
            ("smtp", "back@clinic.example"),
            ("smtp", ""),  # dry-needling: LEADS_INBOX, as it is when sent
            ("webhook", receiver.url("/sports")),
            ("webhook", receiver.url("/global")),
            ("webhook", receiver.url("/global")),
        ]
    )
    # The operator's listing shows a form's inbox masked: enough to recognise, not to copy.
    listing = await asyncio.to_thread(leads_cli, database_url, "outbox", "list")
    assert listing.returncode == 0, listing.stderr
    assert "smtp:s***@clinic.example, l***@clinic.example" in listing.stdout
    assert "sports@clinic.example" not in listing.stdout


async def _all_sent(query: Query, count: int) -> list[dict[str, Any]] | None:
    rows = await query("SELECT channel, target, status FROM outbox")
    done = [r for r in rows if r["status"] == "delivered"]
    return rows if len(done) >= count and len(done) == len(rows) else None


async def test_a_follow_up_and_a_released_lead_go_to_their_forms_inbox(
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    lead: Callable[..., dict[str, Any]],
    lead_of: LeadOf,
    query: Query,
) -> None:
    with mail_server() as smtp:
        forms = forms_file(tmp_path, receiver)
        settings = routed_settings(database_url, smtp, receiver, forms)
        async with serving_app(settings) as client:
            first = lead(form="dry-needling")
            await submit(client, first, lead_of)
            # The same person again, through sports: an enquiry under the first lead, told
            # to the people of the form it came through.
            await submit(client, {**first, "form": "sports"}, lead_of)
            spam = lead(form="massage", website="https://spam.example")  # the honeypot
            spam_lead = await submit(client, spam, lead_of)
            received = await eventually(emails(smtp, 2), what="two clinic emails")
            assert {str(m.message["Subject"]).split(":")[0]: m.recipients for m in received} == {
                "New enquiry": GLOBAL_INBOX,
                "Follow-up enquiry": SPORTS_INBOX,
            }
            notified = {uuid.UUID(str(r["lead_id"])) for r in await query("SELECT * FROM outbox")}
            assert uuid.UUID(spam_lead) not in notified  # spam: no notifications

            done = await asyncio.to_thread(
                leads_cli,
                database_url,
                "spam",
                "release",
                spam_lead,
                LEADS_FORMS_FILE=str(forms),
                LEADS_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}?starttls=off",
                LEADS_INBOX=",".join(GLOBAL_INBOX),
                LEADS_WEBHOOK_URLS=receiver.url("/global"),
                LEADS_WEBHOOK_SECRET=WEBHOOK_SECRET,
            )
            assert done.returncode == 0, done.stderr
            assert "1 notification(s) on their way" in done.stdout  # massage: no webhooks
            [released] = (await eventually(emails(smtp, 3), what="the released lead's email"))[2:]
    assert released.recipients == ["massage@clinic.example"]
    assert "Massage" in str(released.message["Subject"])


async def test_the_digest_and_the_alerts_go_to_the_settings_inbox(
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    lead: Callable[..., dict[str, Any]],
    lead_of: LeadOf,
    query: Query,
) -> None:
    receiver.script["/sports"] = [400]  # a permanent refusal: a dead letter, an incident
    start = utcnow()  # the dispatcher's clock starts now, and the digest is due soon after
    with mail_server() as smtp:
        forms = forms_file(tmp_path, receiver)
        settings = routed_settings(
            database_url,
            smtp,
            receiver,
            forms,
            dispatcher="worker",  # only the test's dispatcher delivers, on the test's clock
            digest_at=f"{start + timedelta(minutes=5):%H:%M}",
            follow_up_hours=4,
        )
        async with serving_app(settings) as client:
            lead_id = await submit(client, lead(form="sports"), lead_of)
        database = Database.from_settings(settings)
        try:
            async with database.writing() as session:  # waiting since yesterday: overdue
                await session.execute(
                    update(Lead)
                    .where(col(Lead.id) == uuid.UUID(lead_id))
                    .values(created_at=start - timedelta(days=1))
                )
        finally:
            await database.close()
        now = TurnClock(utcnow())  # after the rows were written, so they are due
        async with dispatchers(settings, now):

            async def dead() -> bool:
                return bool(await query("SELECT id FROM outbox WHERE status = 'dead'"))

            await eventually(dead, what="the sports webhook's dead letter")
            now.moment = start + timedelta(minutes=6)  # past the digest's time, and the
            # alerts' next check (every 30 s)
            await now.turns(20)

            def kinds() -> dict[str, list[str]]:
                with smtp.lock:
                    return {str(m.message["Subject"]): m.recipients for m in smtp.received}

            async def both() -> dict[str, list[str]] | None:
                found = kinds()
                digest = [s for s in found if "opening hours" in s]
                return found if digest and ALERT_SUBJECT in found else None

            found = await eventually(both, what="the digest and the alert")
    assert found[ALERT_SUBJECT] == GLOBAL_INBOX  # no admin accounts: LEADS_INBOX
    assert found["1 lead waiting over 4 opening hours"] == GLOBAL_INBOX
    assert found["New enquiry: Sports injuries from Ada"] == SPORTS_INBOX  # the lead itself
    assert len(found) == 3


async def test_a_webhook_url_taken_out_of_the_forms_file_is_not_posted_to(
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    lead: Callable[..., dict[str, Any]],
    lead_of: LeadOf,
    query: Query,
) -> None:
    with mail_server() as smtp:
        forms = forms_file(tmp_path, receiver)
        settings = routed_settings(database_url, smtp, receiver, forms, dispatcher="worker")
        async with serving_app(settings) as client:
            await submit(client, lead(form="sports"), lead_of)
        [row] = await query("SELECT target FROM outbox WHERE channel = 'webhook'")
        assert row["target"] == receiver.url("/sports")
        # The clinic moves sports to another receiver before the row is sent.
        forms_file(tmp_path, receiver, webhook_urls=[receiver.url("/sports-new")])
        async with dispatchers(settings, utcnow):

            async def settled() -> list[dict[str, Any]] | None:
                rows = await query("SELECT channel, status, last_error FROM outbox")
                return rows if all(r["status"] != "pending" for r in rows) else None

            rows = await eventually(settled, what="both notifications settled")
    assert sorted((r["channel"], r["status"], r["last_error"]) for r in rows) == [
        ("smtp", "delivered", None),
        ("webhook", "dead", "this webhook URL is no longer configured"),
    ]
    assert receiver.everything() == []


def test_leads_check_shows_where_each_forms_notifications_go(
    tmp_path: Path, receiver: Receiver
) -> None:
    forms = forms_file(tmp_path, receiver)
    env = leads_env(
        database_url=f"sqlite:///{tmp_path / 'leads.db'}",
        smtp_url="smtp://127.0.0.1:2525",
        inbox=",".join(GLOBAL_INBOX),
        webhook_urls=receiver.url("/global?token=s3cret"),
        webhook_secret=WEBHOOK_SECRET,
        forms_file=str(forms),
    )
    assert run_leads("migrate", env=env, cwd=tmp_path).returncode == 0
    done = run_leads("check", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("forms: back, dry-needling, massage, sports") + 1
    assert lines[start : start + 4] == [
        "form back: email -> form inbox (1: b***@clinic.example); "
        "webhooks -> LEADS_WEBHOOK_URLS (1); texts -> none",
        "form dry-needling: email -> LEADS_INBOX (2 addresses); "
        "webhooks -> LEADS_WEBHOOK_URLS (1); texts -> none",
        "form massage: email -> form inbox (1: m***@clinic.example); webhooks -> none; "
        "texts -> none",
        "form sports: email -> form inbox (2: s***@clinic.example, l***@clinic.example); "
        f"webhooks -> form webhook_urls (1: {receiver.url('/sports')}); texts -> none",
    ]
    assert "s3cret" not in done.stdout


LONG_INBOX = [f"desk{i:03}@clinic.example" for i in range(30)]


@pytest.mark.parametrize(
    ("sports", "expected"),
    [
        ({"inbox": ["sports@clinic.example", "not an address"]}, "inbox 'not an address' is not"),
        ({"inbox": LONG_INBOX}, f"inbox is {len(','.join(LONG_INBOX))} characters"),
        ({"inbox": 7}, "inbox must be a list of texts"),
        ({"webhook_urls": ["ftp://crm.example/hook"]}, "webhook_urls 'ftp://crm.example/hook'"),
        ({"webhook_urls": ["https://crm.example/x?key=s3cret y"]}, "webhook_urls 'https://"),
        # Worded by leads.core.contacts.e164_number, which says why in its own words.
        ({"sms_to": ["202 555 0143"]}, "sms_to "),
        ({"sms_to": ["+1202555014"]}, "sms_to "),
        ({"sms_to": "+12025550143, +44 20 7946 0958"}, "sms_to "),
    ],
)
def test_a_bad_recipient_in_the_forms_file_stops_the_start_naming_the_form_and_key(
    tmp_path: Path, receiver: Receiver, sports: dict[str, Any], expected: str
) -> None:
    forms = forms_file(tmp_path, receiver, **sports)
    env = leads_env(
        database_url=f"sqlite:///{tmp_path / 'leads.db'}",
        smtp_url="smtp://127.0.0.1:2525",
        inbox=",".join(GLOBAL_INBOX),
        forms_file=str(forms),
    )
    for command in ("check", "serve"):
        done = run_leads(command, env=env, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        assert "form 'sports'" in done.stderr, done.stderr
        assert expected in done.stderr, done.stderr
        assert "s3cret" not in done.stderr


@pytest.mark.parametrize(
    ("key", "value", "unset", "expected"),
    [
        (
            "inbox",
            '"sports@clinic.example"',
            ("smtp_url", "inbox"),
            "form 'sports': inbox is set, but nothing sends to it: set LEADS_SMTP_URL or "
            "LEADS_EMAIL_API",
        ),
        (
            "webhook_urls",
            '["https://crm.clinic.example/hooks/sports"]',
            ("webhook_secret",),
            "form 'sports': webhook_urls is set, but nothing sends to it: set LEADS_WEBHOOK_SECRET",
        ),
        # No SMS channel configured (the fix it names is the SMS channel's setting).
        ("sms_to", '["+12025550143"]', (), "form 'sports': sms_to is set, but nothing sends to it"),
    ],
)
def test_recipients_no_channel_can_reach_stop_the_start(
    tmp_path: Path, key: str, value: str, unset: tuple[str, ...], expected: str
) -> None:
    forms = tmp_path / "forms.toml"
    forms.write_text(f'[forms.sports]\ntitle = "Sports injuries"\n{key} = {value}\n')
    given = {
        "database_url": f"sqlite:///{tmp_path / 'leads.db'}",
        "smtp_url": "smtp://127.0.0.1:2525",
        "inbox": ",".join(GLOBAL_INBOX),
        "webhook_secret": WEBHOOK_SECRET,
        "forms_file": str(forms),
    }
    env = leads_env(**{name: v for name, v in given.items() if name not in unset})
    done = run_leads("check", env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr, done.stderr
