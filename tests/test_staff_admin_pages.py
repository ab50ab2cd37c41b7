"""The spam folder, deliveries, response times and audit log pages, through HTTP.

Each test builds the app on its database with a fake clock (the pages' "now"), signs a
member of staff in through /staff/login as a browser would, and sends leads through the
public API. The SMTP server is real (tests/mail.py)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from leads.app import create_app
from leads.core.vocabulary import AuditAction, Role
from leads.staff.accounts import add_user
from leads.storage.database import Database
from tests.clock import FakeClock
from tests.conftest import LeadOf, Query, make_settings, migrate
from tests.mail import MailServer, mail_server, smtp_settings
from tests.support import eventually

PASSWORD = "correct horse battery"
DESK = "desk@clinic.example"
ADMIN = "owner@clinic.example"
PAGES = ("/staff/spam", "/staff/deliveries", "/staff/response-times", "/staff/audit")


class Clinic:
    def __init__(self, database_url: str, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.database_url = database_url
        self.clock = clock
        self.client = client

    async def add_user(self, email: str, role: Role = Role.STAFF) -> None:
        database = Database.from_settings(make_settings(self.database_url))
        try:
            async with database.writing() as session:
                now = datetime.fromtimestamp(self.clock.now(), UTC)
                await add_user(
                    session=session, email=email, password=PASSWORD, role=role, actor="cli", now=now
                )
        finally:
            await database.close()

    async def sign_in(self, email: str, role: Role = Role.STAFF) -> None:
        await self.add_user(email, role)
        page = await self.client.get("/staff/login")
        token = field(page.text, "login_token")
        data = {"login_token": token, "email": email, "password": PASSWORD}
        signed_in = await self.client.post("/staff/login", data=data)
        assert signed_in.status_code == 303, signed_in.text

    async def lead(self, **fields: Any) -> str:
        body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:8]}@example.com"}
        answer = await self.client.post("/api/leads", json={"consent": True, **body, **fields})
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    async def post_form(self, page: str, action: str, **data: str) -> httpx.Response:
        """POST one of ``page``'s forms with the session's CSRF token, as the page has it."""
        html = (await self.client.get(page)).text
        return await self.client.post(
            action, data={"csrf_token": field(html, "csrf_token"), **data}
        )


def table(page: httpx.Response) -> str:
    """The rows of the page's table (not its filter form, whose choices name every action)."""
    found = re.search(r"<tbody>(.*?)</tbody>", page.text, re.S)
    return found.group(1) if found else ""


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return found.group(1)


@pytest.fixture
async def clinic(database_url: str) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def build(**overrides: Any) -> Clinic:
            settings = make_settings(database_url, **overrides)
            await migrate(settings)
            clock = FakeClock()
            app = create_app(settings, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                    base_url="http://testserver",
                )
            )
            return Clinic(database_url, clock, client)

        yield build


async def received(smtp: MailServer, count: int) -> list[Any]:
    """The server's messages once it has ``count`` (the app delivers on this loop)."""

    async def probe() -> list[Any] | None:
        with smtp.lock:
            return list(smtp.received) if len(smtp.received) >= count else None

    return await eventually(probe, what=f"{count} email(s)")


@pytest.fixture
def smtp() -> Any:
    with mail_server() as server:
        yield server


# --- who may see them ----------------------------------------------------------------


async def test_every_page_needs_sign_in(clinic: Any) -> None:
    app = await clinic()
    for path in PAGES:
        answer = await app.client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/staff/login?next=%2Fstaff%2F"), path
    for action in ("/staff/deliveries/retry-all", f"/staff/spam/{uuid.uuid4()}/release"):
        answer = await app.client.post(action, data={"csrf_token": "x"})
        assert answer.status_code == 303, action
        assert answer.headers["location"].startswith("/staff/login"), action


async def test_staff_see_their_pages_with_staff_headers_and_get_403_for_the_audit_log(
    clinic: Any,
) -> None:
    app = await clinic()
    await app.sign_in(DESK)
    for path in PAGES[:3]:
        page = await app.client.get(path)
        assert page.status_code == 200, path
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text
        assert "style=" not in page.text
    refused = await app.client.get("/staff/audit", headers={"accept": "text/html"})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "Audit log</h1>" not in refused.text


# --- the spam folder -----------------------------------------------------------------


async def test_not_spam_releases_the_lead_and_sends_its_held_notification(
    clinic: Any, smtp: MailServer, lead_of: LeadOf, query: Query
) -> None:
    app = await clinic(**smtp_settings(smtp, autoreply=False))
    await app.sign_in(DESK)
    lead_id = await lead_of(await app.lead(name="Grace Hopper", website="http://spam.example"))
    await app.lead(name="Alan Turing")  # not spam: not in the folder
    folder = await app.client.get("/staff/spam")
    assert "Grace" in folder.text
    assert "Hopper" not in folder.text
    assert "Alan" not in folder.text
    assert "A hidden field that only robots fill in was filled in" in folder.text
    assert f'href="/staff/leads/{lead_id}"' in folder.text
    await received(smtp, 1)  # Alan's notification; Grace's is held

    released = await app.post_form("/staff/spam", f"/staff/spam/{lead_id}/release")
    assert released.status_code == 303
    assert released.headers["location"] == "/staff/spam?done=released"
    after = await app.client.get(released.headers["location"])
    assert "Moved out of spam" in after.text
    assert "Grace" not in after.text
    assert "The spam folder is empty." in after.text
    [mail] = [m for m in await received(smtp, 2) if "Grace" in m.part("plain")]
    assert mail.recipients

    row = await _lead_row(query, lead_id)
    assert row["status"] == "new"
    assert not row["spam"]
    audit = await query(
        "SELECT actor, action, lead_id FROM audit_log WHERE action = 'lead_released'"
    )
    assert [(a["actor"], str(a["lead_id"]).replace("-", "")) for a in audit] == [
        (f"user:{DESK}", lead_id.replace("-", ""))
    ]


async def _lead_row(query: Query, lead_id: str) -> dict[str, Any]:
    rows = await query("SELECT id, spam, status FROM leads")
    [row] = [r for r in rows if str(r["id"]).replace("-", "") == lead_id.replace("-", "")]
    return row


async def test_not_spam_without_the_csrf_token_is_refused(
    clinic: Any, lead_of: LeadOf, query: Query
) -> None:
    app = await clinic(dispatcher="worker")
    await app.sign_in(DESK)
    lead_id = await lead_of(await app.lead(website="x"))
    for data in ({"other": "1"}, {"csrf_token": "not-the-token"}):
        refused = await app.client.post(f"/staff/spam/{lead_id}/release", data=data)
        assert refused.status_code == 403
    assert (await _lead_row(query, lead_id))["spam"]
    assert "Ada" in (await app.client.get("/staff/spam")).text
    again = await app.post_form("/staff/spam", f"/staff/spam/{lead_id}/release")
    twice = await app.post_form("/staff/spam", f"/staff/spam/{lead_id}/release")
    assert again.headers["location"] == "/staff/spam?done=released"
    assert twice.headers["location"] == "/staff/spam?done=gone"


async def test_the_spam_folder_escapes_names_and_pages_newest_first(
    clinic: Any,
) -> None:
    app = await clinic(dispatcher="worker")
    await app.sign_in(DESK)
    await app.lead(name="<script>alert(1)</script> Evil", website="x")
    for n in range(26):
        await app.lead(name=f"Person{n:02d} Smith", website="x")
    first = await app.client.get("/staff/spam")
    assert "<script>alert(1)</script>" not in first.text
    assert "Person25" in first.text
    assert "Person01" in first.text
    assert "Person00" not in first.text
    cursor = re.search(r'href="/staff/spam\?cursor=([^"]+)"', first.text)
    assert cursor
    second = await app.client.get(f"/staff/spam?cursor={cursor.group(1)}")
    assert "Person00" in second.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in second.text
    assert "Person25" not in second.text


# --- deliveries ----------------------------------------------------------------------


async def test_dead_letters_come_first_with_their_error_and_retry_queues_them_again(
    clinic: Any, smtp: MailServer, lead_of: LeadOf, query: Query
) -> None:
    smtp.script.append("550 5.1.1 <ann.private@example.com> mailbox unavailable")
    app = await clinic(**smtp_settings(smtp, autoreply=False))
    await app.sign_in(DESK)
    lead_id = await lead_of(await app.lead(name="Ann Private"))

    async def dead() -> list[dict[str, Any]] | None:
        rows = await query("SELECT id FROM outbox WHERE status = 'dead'")
        return rows or None

    [message] = await eventually(dead, what="a dead letter")
    page = await app.client.get("/staff/deliveries")
    assert page.text.index("Failed: not sent (1)") < page.text.index("On their way")
    assert "SMTP 550" in page.text
    assert f'href="/staff/leads/{lead_id}"' in page.text
    assert "Ann" in page.text
    assert "Private" not in page.text

    message_id = str(uuid.UUID(str(message["id"]).replace("-", "")))
    retried = await app.post_form("/staff/deliveries", f"/staff/deliveries/{message_id}/retry")
    assert retried.status_code == 303
    assert retried.headers["location"] == "/staff/deliveries?done=retried"
    await received(smtp, 1)  # the server accepts it this time

    async def delivered() -> bool:
        rows = await query("SELECT status FROM outbox")
        return [r["status"] for r in rows] == ["delivered"]

    await eventually(delivered, what="the retried message's delivery")
    page = await app.client.get("/staff/deliveries")
    assert "Nothing has failed." in page.text
    assert "Recently delivered" in page.text
    assert "Sent</span>" in page.text
    audit = await query("SELECT actor, action FROM audit_log WHERE action = 'message_retried'")
    assert [(a["actor"], a["action"]) for a in audit] == [(f"user:{DESK}", "message_retried")]
    events = await query("SELECT kind FROM lead_events")
    assert [e["kind"] for e in events] == ["resent"]


async def test_retry_all_queues_every_dead_letter_and_needs_the_csrf_token(
    clinic: Any, query: Query
) -> None:
    app = await clinic(dispatcher="worker")
    await app.sign_in(DESK)
    for _ in range(3):
        await app.lead()
    await query(
        "UPDATE outbox SET status = 'dead', last_error = :e",
        e="timed out <b>sending</b> to ann.private@example.com",
    )
    pending_page = await app.client.get("/staff/deliveries")
    assert "ann.private@example.com" not in pending_page.text  # an address in an error is masked
    assert "timed out &lt;b&gt;sending&lt;/b&gt; to [address]" in pending_page.text
    assert pending_page.text.count("Retry<span") == 3
    refused = await app.client.post("/staff/deliveries/retry-all", data={"other": "1"})
    assert refused.status_code == 403
    done = await app.post_form("/staff/deliveries", "/staff/deliveries/retry-all")
    assert done.headers["location"] == "/staff/deliveries?done=retried_all"
    rows = await query("SELECT status FROM outbox")
    assert [r["status"] for r in rows] == ["pending"] * 3
    page = await app.client.get(done.headers["location"])
    assert "Every dead letter is queued" in page.text
    assert "On their way (3)" in page.text
    nothing = await app.post_form("/staff/deliveries", "/staff/deliveries/retry-all")
    assert nothing.headers["location"] == "/staff/deliveries?done=none"
    audit = await query("SELECT action FROM audit_log WHERE action = 'message_retried'")
    assert len(audit) == 3


# --- response times ------------------------------------------------------------------


async def test_response_times_match_a_known_week(
    clinic: Any, lead_of: LeadOf, query: Query
) -> None:
    # The fake clock says Sunday 15 June 2025; the week is Monday 9 to Sunday 15 June.
    app = await clinic(dispatcher="worker", opening_hours="Mon-Fri 08:00-18:00", follow_up_hours=4)
    await app.sign_in(DESK)
    known = [  # created, first response (all in opening hours)
        ("2025-06-09 10:00", "2025-06-09 10:30"),  # 30 min
        ("2025-06-10 10:00", "2025-06-10 11:00"),  # 1 h
        ("2025-06-11 10:00", "2025-06-11 15:00"),  # 5 h: past the 4 h deadline
        ("2025-06-12 10:00", None),  # still waiting
    ]
    for created, answered in known:
        lead_id = (await lead_of(await app.lead())).replace("-", "")
        rows = await query("SELECT id FROM leads")
        [stored] = [r["id"] for r in rows if str(r["id"]).replace("-", "") == lead_id]
        await query(
            "UPDATE leads SET created_at = :c, first_response_at = :a, status = :s WHERE id = :id",
            c=datetime.fromisoformat(created).replace(tzinfo=UTC),
            a=datetime.fromisoformat(answered).replace(tzinfo=UTC) if answered else None,
            s="contacted" if answered else "new",
            id=stored,
        )
    page = await app.client.get("/staff/response-times")
    assert page.status_code == 200
    caption = re.search(r"<caption[^>]*>(.*?)</caption>", page.text, re.S)
    assert caption
    words = " ".join(caption.group(1).split())
    assert "Monday to Friday 08:00 to 18:00" in words
    assert "UTC" in words
    assert "within 4 h" in words
    first_row = re.search(r"<tbody>\s*<tr>(.*?)</tr>", page.text, re.S)
    assert first_row
    cells = [c.strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", first_row.group(1))]
    # median of 30 min, 1 h, 5 h is 1 h; p90 is 1 h + 0.8 * 4 h = 4 h 12 min.
    assert cells == ["9 Jun to 15 Jun 2025", "4", "1 h", "4 h 12 min", "50%", "1"]
    assert page.text.count("<tr>") == 1 + 8  # the header and eight weeks
    assert "none answered" in page.text
    assert "no leads" in page.text
    assert (await app.client.get("/staff/response-times?weeks=2")).text.count("<tr>") == 3


# --- the audit log -------------------------------------------------------------------


async def test_the_audit_log_is_for_admins_and_its_filters_work(
    clinic: Any, lead_of: LeadOf
) -> None:
    app = await clinic(dispatcher="worker", timezone="Europe/London")
    await app.sign_in(DESK)
    spam_id = await lead_of(await app.lead(website="x"))
    await app.post_form("/staff/spam", f"/staff/spam/{spam_id}/release")
    await app.post_form("/staff/spam", "/staff/logout")
    await app.sign_in(ADMIN, Role.ADMIN)

    everything = await app.client.get("/staff/audit")
    assert everything.status_code == 200
    rows = table(everything)
    assert "Marked a lead not spam" in rows
    assert "Signed in" in rows
    assert "Signed out" in rows
    assert "203.0.113.7" in rows
    assert f'href="/staff/leads/{spam_id}"' in rows
    assert "Europe/London time" in everything.text
    # Nothing on the page edits the log: its one form is the GET filter (sign-out is in
    # the header, before <main>).
    main = everything.text.split("<main", 1)[1]
    assert 'method="post"' not in main

    by_action = table(await app.client.get("/staff/audit?action=lead_released"))
    assert "Marked a lead not spam" in by_action
    assert "Signed in" not in by_action
    by_lead = table(await app.client.get(f"/staff/audit?lead={spam_id}"))
    assert by_lead.count("<tr>") == 1  # the release
    by_person = table(await app.client.get(f"/staff/audit?person={ADMIN.upper()}"))
    assert "Signed in" in by_person
    assert "Marked a lead not spam" not in by_person
    assert DESK not in by_person
    nobody = await app.client.get("/staff/audit?person=nobody@clinic.example")
    assert "No entries match these filters." in nobody.text

    bad = await app.client.get("/staff/audit?lead=<b>not-an-id</b>")
    assert bad.status_code == 400
    assert 'aria-invalid="true"' in bad.text
    assert "<b>not-an-id</b>" not in bad.text
    assert "&lt;b&gt;not-an-id&lt;/b&gt;" in bad.text


async def test_every_audit_action_is_worded_for_people(clinic: Any) -> None:
    app = await clinic(dispatcher="worker")
    await app.sign_in(ADMIN, Role.ADMIN)
    page = await app.client.get("/staff/audit")
    options = re.findall(r'<option value="([a-z_]+)"[^>]*>([^<]+)</option>', page.text)
    assert [value for value, _ in options] == [action.value for action in AuditAction]
    assert all(value != words and "_" not in words for value, words in options)
    table_rows = table(page)
    assert "Added a staff account" in table_rows  # the accounts `leads user add` made
    assert "Command line" in table_rows


async def test_the_audit_log_pages_newest_first(clinic: Any, query: Query) -> None:
    app = await clinic(dispatcher="worker")
    await app.sign_in(ADMIN, Role.ADMIN)
    for n in range(60):
        await query(
            "INSERT INTO audit_log (at, actor, action, detail) VALUES (:at, :actor, 'login', '{}')",
            at=datetime(2025, 6, 1, tzinfo=UTC),
            actor=f"user:p{n:02d}@clinic.example",
        )
    first = await app.client.get("/staff/audit")
    assert "p59@clinic.example" in first.text
    assert "p09@clinic.example" not in first.text
    older = re.search(r'href="(/staff/audit\?before=\d+)"', first.text)
    assert older
    second = await app.client.get(older.group(1).replace("&amp;", "&"))
    assert "p09@clinic.example" in second.text
    assert "p59@clinic.example" not in second.text
