"""Notifications through HTTP email APIs, end to end: POST a lead to the running app, and a fake
Postmark, SendGrid or Mailgun (``httpx.MockTransport`` answering as each provider documents)
receives it. The outbox row is read back to see what the dispatcher recorded.

SQLite only: the email channel does not depend on the database, and the dispatcher's storage
paths run on PostgreSQL in test_webhooks.py.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from leads.app import create_app
from leads.settings import Settings
from tests.conftest import SECRET, make_settings, migrate

PROVIDERS = ["postmark", "sendgrid", "mailgun"]
KEY = "pm-test-key-0123"
INBOX = ("desk@clinic.example", "owner@clinic.example")
MAIL_FROM = "Clinic Leads <leads@clinic.example>"
MAILGUN_DOMAIN = "mg.clinic.example"
FORM_TITLE = "Learn more about dry needling"


# -- what each provider receives, read back the way its documentation describes it ----------


@dataclass(frozen=True)
class Sent:
    sender: str
    to: list[str]
    reply_to: str | None
    subject: str
    text: str
    html: str
    headers: dict[str, str]  # headers asked for, names lowercased (message-id, x-leads-...)
    everything: str  # every value in the request, decoded: "does X appear anywhere?"


def read_postmark(request: httpx.Request) -> Sent:
    assert request.method == "POST"
    assert str(request.url) == "https://api.postmarkapp.com/email"
    assert request.headers["x-postmark-server-token"] == KEY
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    body = json.loads(request.content)
    documented = {
        "From", "To", "Cc", "Bcc", "Subject", "Tag", "HtmlBody", "TextBody", "ReplyTo",
        "Metadata", "Headers", "TrackOpens", "TrackLinks", "Attachments", "MessageStream",
    }  # fmt: skip
    assert set(body) <= documented, set(body) - documented
    assert body["MessageStream"] == "outbound"
    return Sent(
        sender=body["From"],
        to=body["To"].split(", "),
        reply_to=body.get("ReplyTo"),
        subject=body["Subject"],
        text=body["TextBody"],
        html=body["HtmlBody"],
        headers={h["Name"].lower(): h["Value"] for h in body["Headers"]},
        everything=json.dumps(body, ensure_ascii=False) + str(request.url),
    )


def read_sendgrid(request: httpx.Request) -> Sent:
    assert request.method == "POST"
    assert str(request.url) == "https://api.sendgrid.com/v3/mail/send"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    (personalization,) = body["personalizations"]
    # SendGrid requires text/plain first, then text/html.
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    sender = body["from"]
    return Sent(
        sender=f"{sender['name']} <{sender['email']}>" if "name" in sender else sender["email"],
        to=[r["email"] for r in personalization["to"]],
        reply_to=body["reply_to"]["email"] if "reply_to" in body else None,
        subject=body["subject"],
        text=body["content"][0]["value"],
        html=body["content"][1]["value"],
        headers={k.lower(): v for k, v in body.get("headers", {}).items()},
        everything=json.dumps(body, ensure_ascii=False) + str(request.url),
    )


def read_mailgun(request: httpx.Request) -> Sent:
    assert request.method == "POST"
    assert str(request.url) == f"https://api.mailgun.net/v3/{MAILGUN_DOMAIN}/messages"
    token = base64.b64encode(f"api:{KEY}".encode()).decode()
    assert request.headers["authorization"] == f"Basic {token}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = parse_qs(request.content.decode(), keep_blank_values=True, strict_parsing=True)
    single = {name: values[0] for name, values in fields.items() if name != "to"}
    assert all(len(v) == 1 for name, v in fields.items() if name != "to")
    return Sent(
        sender=single["from"],
        to=fields["to"],
        reply_to=single.get("h:Reply-To"),
        subject=single["subject"],
        text=single["text"],
        html=single["html"],
        headers={
            k[2:].lower(): v for k, v in single.items() if k.startswith("h:") and k != "h:Reply-To"
        },
        everything=" ".join(v for values in fields.values() for v in values) + str(request.url),
    )


READERS: dict[str, Callable[[httpx.Request], Sent]] = {
    "postmark": read_postmark,
    "sendgrid": read_sendgrid,
    "mailgun": read_mailgun,
}


def documented_answer(provider: str, status: int, request: httpx.Request) -> httpx.Response:
    """The status and body each provider documents for this outcome."""
    if provider == "postmark":
        bodies: dict[int, dict[str, Any]] = {
            200: {
                "To": "desk@clinic.example",
                "SubmittedAt": "2024-05-01T10:00:00.0000000-04:00",
                "MessageID": str(uuid.uuid4()),
                "ErrorCode": 0,
                "Message": "OK",
            },
            401: {"ErrorCode": 10, "Message": "Request does not contain a valid Server token."},
            422: {"ErrorCode": 300, "Message": "Invalid email request"},
        }
        # 400, 429 and 5xx carry no ErrorCode of their own.
        body = bodies.get(status, {"Message": f"HTTP {status}"})
        return httpx.Response(status, json=body, request=request)
    if provider == "sendgrid":
        if status == 202:
            return httpx.Response(202, headers={"X-Message-Id": "sg-abc123"}, request=request)
        error = {"message": f"documented error {status}", "field": None, "help": None}
        if status == 400:
            error.update(message="The from email does not contain a valid address.", field="from")
        return httpx.Response(status, json={"errors": [error]}, request=request)
    if status == 200:
        body = {"id": f"<20240501.1@{MAILGUN_DOMAIN}>", "message": "Queued. Thank you."}
        return httpx.Response(200, json=body, request=request)
    if status == 401:
        return httpx.Response(401, text="Forbidden", request=request)
    return httpx.Response(status, json={"message": f"error {status}"}, request=request)


SUCCESS = {"postmark": 200, "sendgrid": 202, "mailgun": 200}


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status (with the provider's documented body) and headers."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


Answer = Reply | Exception


@dataclass
class Call:
    at: float  # time.monotonic()
    wall: datetime
    request: httpx.Request
    sent: Sent


@dataclass
class FakeProvider:
    """Records every request; answers each visitor (known by their Reply-To) from a script,
    then with the provider's documented success."""

    name: str
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    default: list[Answer] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = READERS[self.name](request)
        with self.lock:
            self.calls.append(Call(time.monotonic(), datetime.now(UTC), request, sent))
            script = self.scripts.get(sent.reply_to or "", self.default)
            answer = script.pop(0) if script else Reply(SUCCESS[self.name])
        if isinstance(answer, Exception):
            raise answer
        response = documented_answer(self.name, answer.status, request)
        response.headers.update(answer.headers)
        return response

    def calls_from(self, visitor: str) -> list[Call]:
        return [c for c in self.calls if c.sent.reply_to == visitor]


# -- the app, driven through its front door ----------------------------------------------


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "leads.db"


def api_settings(db_file: Path, provider: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "email_api": provider,
        "email_api_key": KEY,
        "inbox": ",".join(INBOX),
        "mail_from": MAIL_FROM,
        "retry_base_seconds": 0.05,
        "rate_limit": "off",
        "public_url": "https://leads.clinic.example",
        **extra,
    }
    if provider == "mailgun":
        values["mailgun_domain"] = MAILGUN_DOMAIN
    return make_settings(f"sqlite+aiosqlite:///{db_file}", **values)


@contextlib.asynccontextmanager
async def running_app(
    settings: Settings, provider: FakeProvider, *, migrated: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    if not migrated:
        await migrate(settings)
    app = create_app(settings, http_transport=httpx.MockTransport(provider))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as client,
    ):
        yield client


async def outbox(db_file: Path, **where: Any) -> list[dict[str, Any]]:
    """Outbox rows as stored, read with plain SQL on a connection of our own."""

    def read() -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(db_file, timeout=5)) as conn:
            conn.row_factory = sqlite3.Row
            rows = [dict(r) for r in conn.execute("SELECT * FROM outbox ORDER BY created_at")]
        for row in rows:
            row["id"] = str(uuid.UUID(row["id"]))
            row["lead_id"] = str(uuid.UUID(row["lead_id"]))
        return [r for r in rows if all(r[k] == v for k, v in where.items())]

    return await asyncio.to_thread(read)


async def settled(db_file: Path, lead_id: str, within: float = 30) -> dict[str, Any]:
    """Poll until the lead's message is delivered or dead; return its row."""
    deadline = time.monotonic() + within
    while True:
        rows = await outbox(db_file, lead_id=lead_id)
        if rows and all(r["status"] in ("delivered", "dead") for r in rows):
            (row,) = rows
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered or dead after {within} s: {rows}")
        await asyncio.sleep(0.02)


async def first_failure(db_file: Path, lead_id: str, within: float = 20) -> dict[str, Any]:
    """Poll until the first attempt has failed and its retry is scheduled; return the row."""
    deadline = time.monotonic() + within
    while True:
        rows = await outbox(db_file, lead_id=lead_id, attempts=1, status="pending")
        if rows and rows[0]["last_error"]:
            return rows[0]
        assert time.monotonic() < deadline, await outbox(db_file, lead_id=lead_id)
        await asyncio.sleep(0.01)


def stored_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


async def submit(client: httpx.AsyncClient, db_file: Path, **fields: Any) -> str:
    """Submit a lead; the id of the lead it made (the answer is the submission's receipt)."""
    body = {"name": "Ada Lovelace", "email": "ada@example.com", "consent": True, **fields}
    response = await client.post("/api/leads", json=body)
    assert response.status_code == 201, response.text
    receipt = uuid.UUID(response.json()["id"]).hex

    def read() -> str:
        with contextlib.closing(sqlite3.connect(db_file, timeout=5)) as conn:
            (lead_id,) = conn.execute("SELECT id FROM leads WHERE receipt_id = ?", (receipt,))
        return str(uuid.UUID(lead_id[0]))

    return await asyncio.to_thread(read)


# -- the tests ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_new_lead_is_sent_as_the_provider_documents(provider: str, db_file) -> None:
    fake = FakeProvider(provider)
    async with running_app(api_settings(db_file, provider), fake) as client:
        lead_id = await submit(
            client,
            db_file,
            name="Ann O'Neil & Co",
            email="ann@example.com",
            phone="(202) 555-0143",
            preferred_contact="phone",
            interest="Lower back pain",
            message="My back <script>alert(1)</script> hurts",
        )
        row = await settled(db_file, lead_id)

    assert row["status"] == "delivered"
    assert row["attempts"] == 1
    assert row["last_error"] is None
    assert row["delivered_at"] is not None
    (call,) = fake.calls
    sent = call.sent
    assert sent.to == list(INBOX)
    assert sent.sender == MAIL_FROM
    assert sent.reply_to == "ann@example.com"
    assert sent.subject == f"New enquiry: {FORM_TITLE} from Ann"
    assert "hurts" not in sent.subject
    assert sent.headers["message-id"] == f"<{row['id']}@clinic.example>"
    assert sent.headers["x-leads-notification-id"] == row["id"]
    assert "My back <script>alert(1)</script> hurts" in sent.text
    assert "Ann O'Neil & Co" in sent.text
    assert "Lower back pain" in sent.text
    assert f"https://leads.clinic.example/staff/leads/{lead_id}" in sent.text
    assert "<script>" not in sent.html
    assert "My back &lt;script&gt;alert(1)&lt;/script&gt; hurts" in sent.html
    assert "Ann O&#x27;Neil &amp; Co" in sent.html
    assert 'href="tel:+12025550143"' in sent.html
    assert 'href="mailto:ann@example.com"' in sent.html


PERMANENT = [
    ("postmark", 422, "postmark: HTTP 422 ErrorCode 300"),
    ("postmark", 401, "postmark: HTTP 401 ErrorCode 10"),
    ("sendgrid", 400, "sendgrid: HTTP 400"),
    ("sendgrid", 401, "sendgrid: HTTP 401"),
    ("sendgrid", 403, "sendgrid: HTTP 403"),
    ("sendgrid", 413, "sendgrid: HTTP 413"),
    ("mailgun", 400, "mailgun: HTTP 400"),
    ("mailgun", 401, "mailgun: HTTP 401"),
]


@pytest.mark.parametrize(("provider", "status", "error"), PERMANENT)
async def test_a_permanent_error_is_a_dead_letter_at_once(
    provider: str, status: int, error: str, db_file
) -> None:
    fake = FakeProvider(provider, default=[Reply(status)])
    async with running_app(api_settings(db_file, provider), fake) as client:
        row = await settled(db_file, await submit(client, db_file))
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 1, error)
    assert len(fake.calls) == 1


async def test_transient_failures_are_retried_and_permanent_ones_are_not(tmp_path: Path) -> None:
    """Each provider at once (its own app and database), each with four visitors meeting
    different failures: throttled (429 with Retry-After: 1, then 408), a flaky provider
    (500, 503), the network down (connection refused, then a timeout) and a refusal (400).
    Run together because every retry waits for the dispatcher's next look at the outbox."""
    settings = {p: api_settings(tmp_path / f"{p}.db", p) for p in PROVIDERS}
    for each in settings.values():
        await migrate(each)  # one at a time: Alembic's context is process-global
    async with asyncio.TaskGroup() as group:
        for provider in PROVIDERS:
            group.create_task(retries_against(provider, settings[provider], tmp_path))


async def retries_against(provider: str, settings: Settings, tmp_path: Path) -> None:
    db_file = tmp_path / f"{provider}.db"
    throttled, flaky, offline, refused = (
        f"{who}@example.com" for who in ("throttled", "flaky", "offline", "refused")
    )
    fake = FakeProvider(
        provider,
        scripts={
            throttled: [Reply(429, {"Retry-After": "1"}), Reply(408)],
            flaky: [Reply(500), Reply(503)],
            offline: [httpx.ConnectError("connection refused"), httpx.ReadTimeout("slow")],
            refused: [Reply(400)],
        },
    )
    async with running_app(settings, fake, migrated=True) as client:
        ids = {
            who: await submit(client, db_file, email=who)
            for who in (throttled, flaky, offline, refused)
        }

        # Retry-After is honoured in the schedule itself, not just by a slow poll.
        row = await first_failure(db_file, ids[throttled])
        first = fake.calls_from(throttled)[0]
        assert row["last_error"] == f"{provider}: HTTP 429"
        waited = stored_time(row["next_attempt_at"]) - first.wall
        assert 0.95 <= waited.total_seconds() <= 2, (provider, waited)

        rows = {who: await settled(db_file, lead_id, 15) for who, lead_id in ids.items()}

    def outcome(who: str) -> tuple[str, str, int, str | None]:
        return provider, rows[who]["status"], rows[who]["attempts"], rows[who]["last_error"]

    assert outcome(throttled) == (provider, "delivered", 3, f"{provider}: HTTP 408")
    assert outcome(flaky) == (provider, "delivered", 3, f"{provider}: HTTP 503")
    assert outcome(offline) == (provider, "delivered", 3, f"{provider}: ReadTimeout")
    assert outcome(refused) == (provider, "dead", 1, f"{provider}: HTTP 400")
    calls = fake.calls_from(throttled)
    assert len(calls) == 3, provider
    assert calls[1].at - calls[0].at >= 0.95, provider
    for who in (flaky, offline):
        assert len(fake.calls_from(who)) == 3, (provider, who)
    # Meanwhile the dispatcher went round several times: the dead letter was never retried.
    assert len(fake.calls_from(refused)) == 1, provider
    # A repeat is the same message: same Message-ID, same content.
    for who in (throttled, flaky, offline):
        assert len({json.dumps(c.sent.headers) for c in fake.calls_from(who)}) == 1, provider
        assert len({c.sent.text for c in fake.calls_from(who)}) == 1, provider


VISITOR = {
    "name": "Zelda Quixote",
    "email": "zelda.q@example.com",
    "phone": "+1 202 555 0199",
    "preferred_contact": "email",
    "interest": "Sports injury",
    "message": "Ankle sprained playing handball",
}


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_minimal_detail_sends_nothing_about_the_visitor(provider: str, db_file) -> None:
    fake = FakeProvider(provider)
    settings = api_settings(db_file, provider, notify_detail="minimal")
    async with running_app(settings, fake) as client:
        lead_id = await submit(client, db_file, **VISITOR)
        row = await settled(db_file, lead_id)
    assert row["status"] == "delivered"
    (call,) = fake.calls
    whole = call.sent.everything + str(call.request.headers)
    for word in (
        "Zelda",
        "Quixote",
        "zelda.q",
        "555-0199",
        "5550199",
        "Ankle",
        "handball",
        "Sports",
    ):
        assert word not in whole, word
    assert call.sent.reply_to is None
    assert call.sent.subject == f"New enquiry: {FORM_TITLE}"
    assert f"https://leads.clinic.example/staff/leads/{lead_id}" in call.sent.text


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_contact_detail_leaves_out_message_and_interest(provider: str, db_file) -> None:
    fake = FakeProvider(provider)
    settings = api_settings(db_file, provider, notify_detail="contact")
    async with running_app(settings, fake) as client:
        await settled(db_file, await submit(client, db_file, **VISITOR))
    (call,) = fake.calls
    for word in ("Ankle", "handball", "Sports injury"):
        assert word not in call.sent.everything, word
    for word in ("Zelda Quixote", "zelda.q@example.com", "+1 202-555-0199"):
        assert word in call.sent.text
    assert call.sent.reply_to == "zelda.q@example.com"


ENCODED_WORD = re.compile(r"=\?utf-8\?b\?[A-Za-z0-9+/=]*\?=")


def decoded(value: str) -> str:
    """A header field as a mail program shows it: encoded words decoded once."""
    return str(make_header(decode_header(value)))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_header_fields_are_one_line_and_never_raw_encoded_words(
    provider: str, db_file
) -> None:
    """The provider writes the headers from these fields: each is one line without controls,
    and text holding "=?" comes wholly as encoded words, so no MIME builder can read the
    visitor's own "=?...?=" as one. Addresses are ASCII (IDNA); a Reply-To that cannot be
    ASCII is left out."""
    fake = FakeProvider(provider)
    settings = api_settings(db_file, provider, autoreply=True)
    names = {
        "ann@exämple.com": "=?x?b?DQpSZXBseS1UbzogYUBldmlsLmlv?= Smith",
        "zoë@exämple.com": "Zoë\u200f =?utf-8?q?=0D=0ABcc:_x@evil.example?=",
    }
    async with running_app(settings, fake) as client:
        for email, name in names.items():
            response = await client.post(
                "/api/leads", json={"name": name, "email": email, "consent": True}
            )
            assert response.status_code == 201, response.text
        deadline = time.monotonic() + 30
        while len(await outbox(db_file, status="delivered")) < 4:
            assert time.monotonic() < deadline, await outbox(db_file)
            await asyncio.sleep(0.02)

    assert len(fake.calls) == 4
    for call in fake.calls:
        sent = call.sent
        fields = [sent.sender, *sent.to, sent.subject, sent.reply_to or "", *sent.headers.values()]
        for value in fields:
            assert value.isprintable(), value  # no CR, LF, NUL, U+2028...: one clean line
        if "=?" in sent.subject:
            assert all(ENCODED_WORD.fullmatch(w) for w in sent.subject.split(" ")), sent.subject
        assert sent.reply_to is None or sent.reply_to.isascii()
    subjects = {decoded(c.sent.subject): c.sent for c in fake.calls}
    ann = subjects[f"New enquiry: {FORM_TITLE} from =?x?b?DQpSZXBseS1UbzogYUBldmlsLmlv?="]
    assert ann.reply_to == "ann@xn--exmple-cua.com"
    zoe = subjects.get(f"New enquiry: {FORM_TITLE} from Zoë")  # the RLM dropped from headers
    assert zoe is not None, list(subjects)
    assert zoe.reply_to is None  # not ASCII: shown in the body only
    assert "Email: zoë@exämple.com" in zoe.text
    replies = [c.sent for c in fake.calls if c.sent.subject.startswith("We have your request")]
    assert sorted(r.to[0] for r in replies) == ["ann@xn--exmple-cua.com", "zoë@xn--exmple-cua.com"]
    assert all(r.reply_to == INBOX[0] for r in replies)


async def test_an_operator_retry_sends_a_dead_letter_again(db_file: Path) -> None:
    """The key was revoked (401: dead at once); once it is fixed, `leads outbox retry
    --all-dead`, run as the operator runs it, puts the message back and the app sends it."""
    fake = FakeProvider("postmark", default=[Reply(401)])
    async with running_app(api_settings(db_file, "postmark"), fake) as client:
        lead_id = await submit(client, db_file)
        dead = await settled(db_file, lead_id)
        assert (dead["status"], dead["attempts"]) == ("dead", 1)

        env = {
            **os.environ,
            "LEADS_DATABASE_URL": f"sqlite:///{db_file}",
            "LEADS_SECRET_KEY": SECRET,
        }
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "leads", "outbox", "retry", "--all-dead"],
            env=env,
            cwd=db_file.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        row = await settled(db_file, lead_id)

    assert (row["status"], row["attempts"]) == ("delivered", 2)
    assert stored_time(row["scheduled_from"]) > stored_time(dead["scheduled_from"])
    assert len(fake.calls) == 2
    assert fake.calls[1].sent.headers["x-leads-notification-id"] == dead["id"]
