"""Texts to the front desk, end to end: a lead POSTed to the running app reaches a fake
Twilio or Vonage (``httpx.MockTransport`` answering as each provider documents), one text
per staff number; the outbox rows are read back to see what the dispatcher recorded.
Quiet hours run on dispatchers whose clock the test moves; `leads notify-test` runs as a
real process against a real local HTTP server standing in for the provider.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import pytest

from leads.app import create_app
from leads.core.forms import load_forms
from leads.core.vocabulary import Role
from leads.notify.dispatcher import Dispatcher
from leads.notify.sms_text import GSM_BASIC, GSM_EXTENDED, compose, lead_text
from leads.settings import Settings
from leads.staff.accounts import add_user
from leads.storage.database import Database
from leads.storage.models import Lead
from tests.clock import FakeClock
from tests.conftest import LeadOf, Query, make_settings, migrate, serving_app
from tests.mail import mail_server, smtp_settings
from tests.support import eventually, leads_cli, leads_env, outbox_rows, run_leads

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-0123"
VONAGE_KEY = "abcd1234"
VONAGE_SECRET = "vonage-secret-99"
SENDER = "+12025550100"
DESK = "+12025550143"
OWNER = "+447911123456"
PUBLIC = "https://leads.clinic.example"
FORM_TITLE = "Learn more about dry needling"


def twilio_settings(database_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "sms_provider": "twilio",
        "sms_account": SID,
        "sms_token": TOKEN,
        "sms_from": SENDER,
        "sms_to": f"{DESK},{OWNER}",
        "public_url": PUBLIC,
        "retry_base_seconds": 0.05,
        **extra,
    }
    return make_settings(database_url, **values)


def vonage_settings(database_url: str, **extra: Any) -> Settings:
    return twilio_settings(
        database_url,
        sms_provider="vonage",
        sms_account=VONAGE_KEY,
        sms_token=VONAGE_SECRET,
        **extra,
    )


# -- the providers, answering as their documentation says ----------------------------------


@dataclass
class Text:
    to: str
    sender: str
    body: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


Answer = Callable[[httpx.Request], httpx.Response | None]


@dataclass
class FakeProvider:
    """Twilio's Messages API or Vonage's SMS API. ``script``: answers for the next POSTs
    (None: the default acceptance); ``stall``: POSTs accepted, then never answered."""

    name: str
    script: list[Answer] = field(default_factory=list)
    stall: int = 0
    posts: list[httpx.Request] = field(default_factory=list)
    sent: list[Text] = field(default_factory=list)  # what the provider accepted
    look_ups: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.name == "twilio":
            return await self.twilio(request)
        return await self.vonage(request)

    async def twilio(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
        assert str(request.url).startswith("https://api.twilio.com/")
        basic = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {basic}"
        if request.method == "GET":
            self.look_ups.append(request)
            to = request.url.params["To"]
            found = [t for t in self.sent if t.to == to]
            messages = [
                {"sid": f"SM{i:032x}", "to": t.to, "from": t.sender, "body": t.body,
                 "status": "delivered", "date_created": format_datetime(t.created),
                 "date_sent": None}
                for i, t in reversed(list(enumerate(found)))
            ]  # fmt: skip
            return httpx.Response(200, json={"messages": messages, "next_page_uri": None})
        assert request.method == "POST"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        self.posts.append(request)
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        assert set(form) <= {"To", "From", "MessagingServiceSid", "Body"}, form
        assert ("From" in form) != ("MessagingServiceSid" in form)
        scripted = self.script.pop(0)(request) if self.script else None
        if scripted is not None:
            return scripted
        self.sent.append(
            Text(form["To"], form.get("From") or form["MessagingServiceSid"], form["Body"])
        )
        sid = f"SM{len(self.sent) - 1:032x}"
        if self.stall:
            self.stall -= 1
            await asyncio.Event().wait()  # accepted, and the answer never comes back
        return httpx.Response(
            201, json={"sid": sid, "status": "queued", "to": form["To"], "body": form["Body"]}
        )

    async def vonage(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert str(request.url) == "https://rest.nexmo.com/sms/json"
        assert request.headers["content-type"] == "application/json"
        self.posts.append(request)
        body = json.loads(request.content)
        assert set(body) == {"api_key", "api_secret", "from", "to", "text"}, body
        assert (body["api_key"], body["api_secret"]) == (VONAGE_KEY, VONAGE_SECRET)
        assert not body["to"].startswith("+")
        scripted = self.script.pop(0)(request) if self.script else None
        if scripted is not None:
            return scripted
        self.sent.append(Text("+" + body["to"], body["from"], body["text"]))
        if self.stall:
            self.stall -= 1
            await asyncio.Event().wait()
        message = {"to": body["to"], "message-id": f"0A{len(self.sent):014X}", "status": "0"}
        return httpx.Response(200, json={"message-count": "1", "messages": [message]})


def twilio_error(status: int, code: int, message: str = "", **headers: str) -> Answer:
    body = {"code": code, "message": message or f"error {code}", "status": status}
    return lambda request: httpx.Response(status, json=body, headers=headers)


def vonage_status(status: str, text: str = "") -> Answer:
    message = {"status": status, "error-text": text or f"status {status}"}
    return lambda request: httpx.Response(200, json={"message-count": "1", "messages": [message]})


@contextlib.asynccontextmanager
async def app_with(settings: Settings, provider: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with serving_app(settings, http_transport=httpx.MockTransport(provider)) as client:
        yield client


async def submit(client: httpx.AsyncClient, lead_of: LeadOf, **fields: Any) -> str:
    body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:8]}@example.com"}
    answer = await client.post("/api/leads", json={**body, "consent": True, **fields})
    assert answer.status_code == 201, answer.text
    return await lead_of(answer.json()["id"])


async def texts(query: Query, until: str, count: int = 2) -> list[dict[str, Any]]:
    rows = await outbox_rows(query, until=until, count=count)
    return [r for r in rows if r["channel"] == "sms"]


# -- the requests each provider receives ---------------------------------------------------


async def test_twilio_gets_one_form_encoded_post_per_staff_number(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    twilio = FakeProvider("twilio")
    async with app_with(twilio_settings(database_url), twilio) as client:
        lead_id = await submit(client, lead_of, phone="(202) 555-0199", message="my knee hurts")
        rows = await texts(query, "delivered")
    assert sorted(t.to for t in twilio.sent) == sorted([DESK, OWNER])
    assert {t.sender for t in twilio.sent} == {SENDER}
    expected = f"New enquiry ({FORM_TITLE}) from Ada. Open: {PUBLIC}/staff/leads/{lead_id}"
    assert [t.body for t in twilio.sent] == [expected, expected]
    assert sorted(r["target"] for r in rows) == sorted([DESK, OWNER])
    assert sorted(r["provider_message_id"] for r in rows) == [f"SM{i:032x}" for i in (0, 1)]
    assert all(r["attempts"] == 1 and r["handed_over_at"] is not None for r in rows)


async def test_a_messaging_service_sender_and_the_contact_detail(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    service = "MG" + "fedcba9876543210" * 2
    twilio = FakeProvider("twilio")
    settings = twilio_settings(database_url, sms_from=service, sms_to=DESK, sms_detail="contact")
    async with app_with(settings, twilio) as client:
        await submit(client, lead_of, phone="(202) 555-0199")
        await texts(query, "delivered", count=1)
    (post,) = twilio.posts
    form = parse_qs(post.content.decode())
    assert form["MessagingServiceSid"] == [service]
    assert "From" not in form
    assert form["Body"][0].endswith(" Phone: +12025550199")


async def test_vonage_gets_the_documented_json(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    vonage = FakeProvider("vonage")
    async with app_with(vonage_settings(database_url), vonage) as client:
        lead_id = await submit(client, lead_of)
        rows = await texts(query, "delivered")
    bodies = [json.loads(p.content) for p in vonage.posts]
    assert sorted(b["to"] for b in bodies) == sorted([DESK[1:], OWNER[1:]])
    assert {b["from"] for b in bodies} == {SENDER[1:]}
    assert {b["text"] for b in bodies} == {
        f"New enquiry ({FORM_TITLE}) from Ada. Open: {PUBLIC}/staff/leads/{lead_id}"
    }
    assert all(r["provider_message_id"].startswith("0A") for r in rows)


# -- each form's texts to its own people -----------------------------------------------------

THERAPIST = "+12025550177"


async def test_a_forms_own_numbers_get_its_texts_and_the_others_the_settings(
    database_url: str, lead_of: LeadOf, query: Query, tmp_path: Path
) -> None:
    """sports names its own sms_to; the built-in form has none, so LEADS_SMS_TO's numbers
    get its texts; quiet has an empty list: no text at all."""
    forms = tmp_path / "forms.json"
    forms.write_text(
        json.dumps(
            {
                "forms": {
                    "sports": {"title": "Sports injuries", "sms_to": [THERAPIST]},
                    "quiet": {"title": "Quiet form", "sms_to": []},
                }
            }
        )
    )
    twilio = FakeProvider("twilio")
    settings = twilio_settings(database_url, sms_to=DESK, forms_file=str(forms))
    async with app_with(settings, twilio) as client:
        sports = await submit(client, lead_of, form="sports")
        built_in = await submit(client, lead_of)
        await submit(client, lead_of, form="quiet")
        await texts(query, "delivered", count=2)
    sent = {t.body.rsplit("/", 1)[-1]: t.to for t in twilio.sent}
    assert sent == {sports: THERAPIST, built_in: DESK}
    rows = await query("SELECT target FROM outbox WHERE channel = 'sms'")
    assert sorted(r["target"] for r in rows) == sorted([THERAPIST, DESK])


# -- answers mapped to retry or dead letter ------------------------------------------------

TWILIO_ANSWERS = [
    (twilio_error(429, 20429), "delivered", "code 20429"),
    (twilio_error(503, 20500), "delivered", "HTTP 503"),
    (twilio_error(400, 21211, "The 'To' number +12025550143 is not a valid phone number."),
     "dead", "code 21211 (the number is not a valid phone number)"),
    (twilio_error(400, 21610), "dead", "code 21610 (the recipient has replied STOP"),
    (twilio_error(400, 21608), "dead", "code 21608 (a trial account"),
    (twilio_error(401, 20003), "dead", "HTTP 401 code 20003"),
]  # fmt: skip
VONAGE_ANSWERS = [
    (vonage_status("1", "Throughput Rate Exceeded"), "delivered", "status 1 (throttled)"),
    (vonage_status("5"), "delivered", "status 5"),
    (lambda request: httpx.Response(500, text="oops"), "delivered", "HTTP 500"),
    *[(vonage_status(s), "dead", f"status {s}") for s in ("2", "3", "4", "7", "15", "29")],
]


@pytest.mark.parametrize(("answer", "ends", "error"), TWILIO_ANSWERS + VONAGE_ANSWERS)
async def test_each_answer_is_retried_or_a_dead_letter(
    database_url: str,
    lead_of: LeadOf,
    query: Query,
    caplog: pytest.LogCaptureFixture,
    answer: Answer,
    ends: str,
    error: str,
) -> None:
    name = "twilio" if answer in [a for a, _, _ in TWILIO_ANSWERS] else "vonage"
    provider = FakeProvider(name, script=[answer])
    make = twilio_settings if name == "twilio" else vonage_settings
    async with app_with(make(database_url, sms_to=DESK), provider) as client:
        await submit(client, lead_of, name="Zebedee Quist", phone="(202) 555-0199")
        (row,) = await texts(query, ends, count=1)
    assert error in row["last_error"]
    if ends == "delivered":  # retried, and the retry sent it
        assert len(provider.posts) == 2
        assert row["attempts"] == 2
        assert len(provider.sent) == 1
    else:
        assert len(provider.posts) == 1
        assert provider.sent == []
    logged = caplog.text
    for secret in ("Zebedee", "2025550143", "2025550199", TOKEN, VONAGE_SECRET):
        assert secret not in logged
        assert secret not in row["last_error"]


async def test_retry_after_is_honoured(database_url: str, lead_of: LeadOf, query: Query) -> None:
    twilio = FakeProvider("twilio", script=[twilio_error(429, 20429, **{"Retry-After": "600"})])
    async with app_with(twilio_settings(database_url, sms_to=DESK), twilio) as client:
        before = datetime.now(UTC)
        await submit(client, lead_of)

        async def retry_scheduled() -> dict[str, Any] | None:
            rows = await query("SELECT * FROM outbox WHERE channel = 'sms' AND attempts = 1")
            return rows[0] if rows and rows[0]["last_error"] else None

        row = await eventually(retry_scheduled, what="the text's retry")
    due = datetime.fromisoformat(str(row["next_attempt_at"]))
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    assert row["status"] == "pending"
    assert due >= before + timedelta(seconds=600)
    assert row["handed_over_at"] is None  # Twilio said it sent nothing: the mark is back
    assert len(twilio.posts) == 1


# -- at most one text per row, even when the answer is lost ---------------------------------


async def test_twilio_accepted_once_and_timed_out_locally_is_found_not_sent_again(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    twilio = FakeProvider("twilio", stall=1)
    settings = twilio_settings(database_url, sms_to=DESK, delivery_timeout_seconds=0.5)
    async with app_with(settings, twilio) as client:
        await submit(client, lead_of)
        (row,) = await texts(query, "delivered", count=1)
    assert len(twilio.posts) == 1  # exactly one POST reached the provider
    assert len(twilio.look_ups) == 1
    assert twilio.look_ups[0].url.params["From"] == SENDER
    assert row["attempts"] == 2
    assert row["provider_message_id"] == f"SM{0:032x}"


async def test_twilio_lost_before_it_arrived_is_sent_on_the_retry(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=request)  # the answer, or the request

    twilio = FakeProvider("twilio", script=[lost])
    async with app_with(twilio_settings(database_url, sms_to=DESK), twilio) as client:
        await submit(client, lead_of)
        (row,) = await texts(query, "delivered", count=1)
    assert len(twilio.look_ups) == 1  # looked up first: nothing there
    assert len(twilio.posts) == 2
    assert len(twilio.sent) == 1
    assert row["last_error"] == "twilio: ReadTimeout"


async def test_a_follow_ups_lost_text_is_not_mistaken_for_the_leads_first(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    """A follow-up enquiry's text reads like the lead's first one (same lead, same link):
    the look-up only counts a text created since this one was handed over."""

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("lost", request=request)

    twilio = FakeProvider("twilio")
    async with app_with(twilio_settings(database_url, sms_to=DESK), twilio) as client:
        email = "ada@example.com"
        await submit(client, lead_of, email=email)
        await texts(query, "delivered", count=1)
        twilio.sent[0].created -= timedelta(days=1)  # yesterday's enquiry
        twilio.script = [lost]
        await submit(client, lead_of, email=email, message="and one more thing")
        await texts(query, "delivered", count=2)
    assert len(twilio.look_ups) == 1
    assert [t.body for t in twilio.sent] == [twilio.sent[0].body] * 2  # sent, not skipped
    assert len(twilio.posts) == 3


async def test_vonage_accepted_once_and_timed_out_locally_is_a_dead_letter_that_says_why(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    vonage = FakeProvider("vonage", stall=1)
    settings = vonage_settings(database_url, sms_to=DESK, delivery_timeout_seconds=0.5)
    async with app_with(settings, vonage) as client:
        await submit(client, lead_of)
        (row,) = await texts(query, "dead", count=1)
    assert len(vonage.posts) == 1
    assert row["last_error"] == (
        "the answer to the first try was lost: the provider may have sent it; "
        "not sent again so nobody gets two texts"
    )


# -- quiet hours ---------------------------------------------------------------------------

ZONE = "America/New_York"
PASSWORD = "correct horse battery"


def moment(value: Any) -> datetime:
    """A stored timestamp as an aware datetime (SQLite answers text, PostgreSQL datetimes)."""
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


async def test_a_text_due_in_quiet_hours_is_held_until_they_end_and_email_is_not(
    database_url: str, lead_of: LeadOf, query: Query
) -> None:
    """Quiet hours from an hour ago to two hours on (the intake stamps leads with the real
    time): the email goes at once, the text waits (no attempt counted, no POST) and the
    lead page says so; when they end, it goes."""
    clock = FakeClock(start=time.time())
    here = datetime.fromtimestamp(clock.now(), ZoneInfo(ZONE)).replace(second=0, microsecond=0)
    start, end = here - timedelta(hours=1), here + timedelta(hours=2)
    twilio = FakeProvider("twilio")
    with mail_server() as smtp:
        settings = twilio_settings(
            database_url,
            **smtp_settings(smtp),
            sms_to=DESK,
            sms_quiet_hours=f"{start:%H:%M}-{end:%H:%M}",
            timezone=ZONE,
            dispatcher="worker",  # the test's dispatcher delivers, on the test's clock
        )
        await migrate(settings)
        app = create_app(settings, clock=clock)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                    base_url="https://testserver",  # the staff cookies are Secure: https
                )
            )
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.MockTransport(twilio))
            )
            database = Database.from_settings(settings)
            stack.push_async_callback(database.close)
            reads = [0]

            def now() -> datetime:
                reads[0] += 1
                return datetime.fromtimestamp(clock.now(), UTC)

            dispatcher = Dispatcher(
                settings, database, load_forms(None), http, poll_seconds=0.02, clock=now
            )
            dispatcher.start()
            stack.push_async_callback(dispatcher.stop)

            lead_id = await submit(client, lead_of)
            clock.advance(time.time() - clock.now() + 1)  # past the intake's (real) stamp
            await asyncio.to_thread(smtp.wait_for, 1)  # the email is not held

            async def held() -> dict[str, Any] | None:
                rows = await query("SELECT * FROM outbox WHERE channel = 'sms'")
                due = moment(rows[0]["next_attempt_at"]) if rows else None
                return rows[0] if due == end.astimezone(UTC) else None

            row = await eventually(held, what="the text held")
            assert row["status"] == "pending"
            assert row["attempts"] == 0
            # Its give-up horizon moved on by the time held: it starts near their end.
            assert moment(row["scheduled_from"]) >= end - timedelta(seconds=10)
            assert twilio.posts == []

            page = await staff_page(client, database, clock, lead_id)
            assert f"Text held until {end:%H:%M} (quiet hours)" in page
            panel = page.split('id="notifications-heading"', 1)[1].split("</section>", 1)[0]
            assert (
                f"Text to *********143: <strong>Text held until {end:%H:%M} (quiet hours)" in panel
            )
            assert "New lead email by email: <strong>delivered" in panel
            assert DESK not in page
            assert "(text to the front desk): on its way" in page  # the timeline

            clock.advance(end.timestamp() - clock.now() - 60)  # a minute before the end
            await turns(reads, 20)
            assert twilio.posts == []
            clock.advance(60)
            (sent,) = await texts(query, "delivered", count=2)
        assert len(twilio.posts) == 1
        assert sent["attempts"] == 1
        assert len(smtp.received) == 1  # the lead's email; no stall alert for a held text


async def turns(reads: list[int], count: int) -> None:
    """Wait until the dispatcher has read its clock ``count`` more times (turns passed)."""
    goal = reads[0] + count

    async def enough() -> bool:
        return reads[0] >= goal

    await eventually(enough, what=f"{count} dispatcher turns")


async def staff_page(
    client: httpx.AsyncClient, database: Database, clock: FakeClock, lead_id: str
) -> str:
    """The lead page, as a member of staff signed in through the login form sees it."""
    now = datetime.fromtimestamp(clock.now(), UTC)
    async with database.writing() as session:
        await add_user(
            session=session, now=now, email="desk@clinic.example", password=PASSWORD,
            role=Role.STAFF, actor="cli",
        )  # fmt: skip
    login = await client.get("/staff/login")
    token = unescape(login.text.split('name="login_token" value="', 1)[1].split('"', 1)[0])
    data = {"login_token": token, "email": "desk@clinic.example", "password": PASSWORD}
    signed = await client.post("/staff/login", data=data)
    assert signed.status_code == 303, signed.text
    page = await client.get(f"/staff/leads/{lead_id}", headers={"Accept": "text/html"})
    assert page.status_code == 200
    return page.text


# -- what a text says: one GSM-7 segment ---------------------------------------------------


def one_gsm_segment(text: str) -> bool:
    septets = sum(2 if c in GSM_EXTENDED else 1 for c in text)
    return septets <= 160 and all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("Łukasz Żółć", "Lukasz"),  # transliterated: not GSM-7, but has a base letter
        ("Zoë Brontë", "Zoe"),  # ë has no GSM-7 form: its base letter
        ("José Müller", "José"),  # é is GSM-7: kept
        ("王芳", "someone"),  # nothing left
        ("Ada\u200b\u00a0Lovelace", "Ada"),  # invisible and odd spaces: spaces
        (
            "Maximiliane-Wilhelmina-Theodora-Konstantina-Friederike-Augusta-Leopoldina Smith",
            "Maximiliane-",
        ),  # the title is cut first, then the name
    ],
)
async def test_the_text_is_one_gsm7_segment_whatever_the_name(
    database_url: str, lead_of: LeadOf, query: Query, name: str, first: str
) -> None:
    twilio = FakeProvider("twilio")
    async with app_with(twilio_settings(database_url, sms_to=DESK), twilio) as client:
        lead_id = await submit(client, lead_of, name=name)
        await texts(query, "delivered", count=1)
    (text,) = [t.body for t in twilio.sent]
    assert one_gsm_segment(text), text
    title = FORM_TITLE if len(name) < 60 else FORM_TITLE[:8]
    assert text.startswith(f"New enquiry ({title}) from {first}")
    assert text.endswith(f". Open: {PUBLIC}/staff/leads/{lead_id}")
    for invisible in ("\n", "\r", "\u200b", "\u00a0"):
        assert invisible not in text


def test_a_long_title_is_cut_first_then_the_name() -> None:
    link = f"{PUBLIC}/staff/leads/{uuid.uuid4()}"  # 65 characters
    title = "Initial assessment and treatment plan for sports injuries of the knee"
    text = compose(title, "Ada", link)
    assert one_gsm_segment(text)
    assert len(text) == 160
    cut_title = text.removeprefix("New enquiry (").split(") from ", 1)[0]
    assert title.startswith(cut_title)
    assert len(cut_title) < len(title)
    assert ") from Ada. Open: " in text  # the name is whole while the title can give

    name = "Bartholomew-Maximilian-Ferdinand-Leopold-Augustin-Konstantin-Friedrich"  # 70
    text = compose(title, name, link)
    cut_title = text.removeprefix("New enquiry (").split(") from ", 1)[0]
    cut_name = text.split(") from ", 1)[1].split(". Open: ", 1)[0]
    assert one_gsm_segment(text)
    assert cut_title == title[:8].rstrip()  # the title down to its least first
    assert name.startswith(cut_name)
    assert 3 <= len(cut_name) < len(name)
    assert text.endswith(link)  # the link is never cut

    assert len(compose("Back pain", "Ada", link, phone="+12025550199")) <= 160
    extended = compose("Knee [left] {right} ~ € " * 6, "Ada", link)  # two septets each
    assert one_gsm_segment(extended)
    # Visitor text reaching compose has been made one line already; compose's own parts
    # (a name with a line break from another door) come out as one line too.
    assert "\n" not in lead_text_of("Ada\r\nLovelace\u0007", link)


def lead_text_of(name: str, link: str) -> str:
    lead = Lead(form="dry-needling", name=name, consent_version="1", consent_text="ok")
    return lead_text(lead, None, link=link, with_phone=False)


# -- `leads notify-test` and `leads check`, as an operator runs them ------------------------


class TwilioServer(http.server.ThreadingHTTPServer):
    """A real local HTTP server answering as Twilio's Messages API (LEADS_SMS_BASE_URL)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), TwilioHandler)
        self.posts: list[tuple[str, dict[str, str]]] = []  # (Authorization, form)
        self.answer: tuple[int, dict[str, Any]] | None = None  # instead of accepting

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class TwilioHandler(http.server.BaseHTTPRequestHandler):
    server: TwilioServer

    def do_POST(self) -> None:
        assert self.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
        length = int(self.headers["Content-Length"])
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        self.server.posts.append((self.headers["Authorization"], form))
        status, body = self.server.answer or (
            201,
            {"sid": f"SM{len(self.server.posts):032x}", "status": "queued"},
        )
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@contextlib.contextmanager
def twilio_server() -> Iterator[TwilioServer]:
    server = TwilioServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def sms_env(base_url: str, **extra: str) -> dict[str, str]:
    return {
        "LEADS_SMS_PROVIDER": "twilio",
        "LEADS_SMS_ACCOUNT": SID,
        "LEADS_SMS_TOKEN": TOKEN,
        "LEADS_SMS_FROM": SENDER,
        "LEADS_SMS_TO": f"{DESK},{OWNER}",
        "LEADS_SMS_BASE_URL": base_url,
        **extra,
    }


async def test_notify_test_texts_each_number_and_prints_the_answer_masked(
    database_url: str,
) -> None:
    with twilio_server() as twilio:
        env = sms_env(twilio.url)
        done = await asyncio.to_thread(leads_cli, database_url, "notify-test", **env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [
            f"sms *********143: delivered (accepted as SM{1:032x}, status queued)",
            f"sms **********456: delivered (accepted as SM{2:032x}, status queued)",
        ]
        basic = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
        assert [(auth, form["To"], form["From"]) for auth, form in twilio.posts] == [
            (basic, DESK, SENDER),
            (basic, OWNER, SENDER),
        ]
        assert all(one_gsm_segment(form["Body"]) for _, form in twilio.posts)

        twilio.answer = (
            400,
            {"code": 21211, "message": f"The 'To' number {DESK} is not a valid phone number.",
             "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400},
        )  # fmt: skip
        done = await asyncio.to_thread(leads_cli, database_url, "notify-test", **env)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == (
        "sms *********143: FAILED (twilio: HTTP 400 code 21211 (the number is not a valid "
        "phone number): The 'To' number *********143 is not a valid phone number.; permanent)"
    )
    for output in (done.stdout, done.stderr):
        assert "2025550143" not in output
        assert "7911123456" not in output
        assert TOKEN not in output


@pytest.mark.parametrize(
    ("missing", "line"),
    [
        ("LEADS_SMS_ACCOUNT", "LEADS_SMS_ACCOUNT is required with LEADS_SMS_PROVIDER"),
        ("LEADS_SMS_TOKEN", "LEADS_SMS_TOKEN is required with LEADS_SMS_PROVIDER"),
        ("LEADS_SMS_FROM", "LEADS_SMS_FROM is required with LEADS_SMS_PROVIDER"),
        ("LEADS_SMS_TO", "LEADS_SMS_TO is required with LEADS_SMS_PROVIDER"),
    ],
)
def test_a_provider_without_its_account_stops_leads_in_one_line(
    tmp_path: Path, missing: str, line: str
) -> None:
    env = leads_env(database_url=f"sqlite:///{tmp_path / 'leads.db'}")
    env.update(sms_env("https://api.twilio.com"))
    del env[missing]
    for command in ("check", "serve"):
        done = run_leads(command, env=env, cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [f"leads: error: {line}"]


def test_leads_check_hides_the_token_and_masks_the_numbers(tmp_path: Path) -> None:
    env = leads_env(database_url=f"sqlite:///{tmp_path / 'leads.db'}")
    env.update(sms_env("https://api.twilio.com", LEADS_SMS_QUIET_HOURS="20:00 - 07:30"))
    done = run_leads("check", env=env, cwd=tmp_path)
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert shown["LEADS_SMS_TOKEN"] == "(set, hidden)"
    assert shown["LEADS_SMS_TO"] == "*********143,**********456"
    assert shown["LEADS_SMS_QUIET_HOURS"] == "20:00-07:30"
    assert TOKEN not in done.stdout
