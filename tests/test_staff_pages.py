"""The staff dashboard's lead list and lead page through HTTP, as a browser uses them:
signed in with a session cookie, forms posted with the page's CSRF token, every answer a
303 back to the page. Accounts come from the accounts use case on the test's database;
leads from the public API."""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import pytest

from leads.app import create_app
from leads.core.vocabulary import Role
from leads.staff.accounts import add_user, disable_user
from leads.storage.database import Database
from tests.clock import FakeClock
from tests.conftest import Query, make_settings, migrate

PASSWORD = "correct horse battery"
DESK = "desk@clinic.example"
ADMIN = "boss@clinic.example"
HTML = {"Accept": "text/html"}


def field(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return unescape(found.group(1))


class Desk:
    """An app with a fake clock (started at the real time: intake stamps leads with it),
    and a browser-like client signed in as one member of staff."""

    def __init__(self, database_url: str, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.database_url = database_url
        self.clock = clock
        self.client = client

    async def use(self, use_case: Any, **arguments: Any) -> Any:
        database = Database.from_settings(make_settings(self.database_url))
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        try:
            async with database.writing() as session:
                return await use_case(session=session, now=now, **arguments)
        finally:
            await database.close()

    async def sign_in(self, email: str = DESK, role: Role = Role.STAFF) -> None:
        await self.use(add_user, email=email, password=PASSWORD, role=role, actor="cli")
        page = await self.client.get("/staff/login")
        data = {"login_token": field(page.text, "login_token"), "email": email}
        answer = await self.client.post("/staff/login", data={**data, "password": PASSWORD})
        assert answer.status_code == 303, answer.text

    async def new_lead(self, **fields: Any) -> str:
        body = {"name": "Ada Lovelace", "email": f"ada.{uuid.uuid4().hex[:8]}@example.com"}
        answer = await self.client.post("/api/leads", json={**body, "consent": True, **fields})
        assert answer.status_code == 201, answer.text
        receipt = answer.json()["id"]
        leads = (await self.client.get("/api/staff/leads?limit=200")).json()["items"]
        (lead,) = [item for item in leads if receipt in item["enquiry_ids"]]
        return str(lead["id"])

    async def page(self, lead_id: str) -> httpx.Response:
        return await self.client.get(f"/staff/leads/{lead_id}", headers=HTML)

    async def post(self, path: str, **data: str) -> httpx.Response:
        form = {**HTML, "Content-Type": "application/x-www-form-urlencoded"}
        return await self.client.post(path, data=data, headers=form)

    async def act(self, lead_id: str, action: str, **data: str) -> httpx.Response:
        """Post one of the lead page's forms as the page has it (token and version)."""
        page = await self.page(lead_id)
        base = {"csrf_token": field(page.text, "csrf_token")}
        if action in ("status", "assign"):
            base["version"] = field(page.text, "version")
        return await self.post(f"/staff/leads/{lead_id}/{action}", **base, **data)

    async def timeline(self, lead_id: str) -> list[dict[str, Any]]:
        answer = await self.client.get(f"/api/staff/leads/{lead_id}")
        return list(answer.json()["timeline"])


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def build(**overrides: Any) -> Desk:
            settings = make_settings(database_url, **{"dispatcher": "worker", **overrides})
            await migrate(settings)
            clock = FakeClock(start=time.time())
            app = create_app(settings, clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)),
                    base_url="http://testserver",
                )
            )
            return Desk(database_url, clock, client)

        yield build


async def test_a_browser_not_signed_in_is_sent_to_sign_in_and_back(desk: Any) -> None:
    staff = await desk()
    listing = await staff.client.get("/staff?view=all", headers=HTML)
    assert listing.status_code == 303
    assert listing.headers["location"] == "/staff/login?next=%2Fstaff%3Fview%3Dall"
    lead_id = str(uuid.uuid4())
    page = await staff.page(lead_id)
    assert page.headers["location"] == f"/staff/login?next=%2Fstaff%2Fleads%2F{lead_id}"
    form = await staff.post(f"/staff/leads/{lead_id}/notes", text="hello")
    assert form.status_code == 303
    assert form.headers["location"].startswith("/staff/login")


async def test_the_list_shows_new_leads_with_their_wait_and_marks_overdue_ones_in_words(
    desk: Any,
) -> None:
    staff = await desk(follow_up_hours=4, session_idle_minutes=600)
    await staff.sign_in()
    await staff.new_lead(name="Grace Hopper", phone="+12025550147")
    staff.clock.advance(2 * 3600 + 5 * 60 + 30)  # intake stamps leads in real time
    listing = await staff.client.get("/staff", headers=HTML)
    assert listing.status_code == 200
    assert "Grace" in listing.text
    assert "Hopper" not in listing.text
    assert "waiting 2 h 5 min" in listing.text
    assert "Overdue" not in listing.text.split('<ul class="lead-list">')[1]
    assert "nobody assigned" in listing.text
    staff.clock.advance(2 * 3600)
    listing = await staff.client.get("/staff", headers=HTML)
    assert 'class="badge badge-overdue"' in listing.text
    assert "Overdue</span>" in listing.text
    only_overdue = await staff.client.get("/staff?overdue=true", headers=HTML)
    assert "Grace" in only_overdue.text
    from_the_digest = await staff.client.get("/staff/leads", headers=HTML)  # "and N more"
    assert from_the_digest.headers["location"] == "/staff?overdue=true"
    for link in (
        "/staff/spam",
        "/staff/deliveries",
        "/staff/response-times",
        'action="/staff/logout"',
    ):
        assert link in listing.text
    assert "/staff/audit" not in listing.text  # admins only


async def test_filters_search_and_paging(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    for number in range(3):
        await staff.new_lead(name=f"Person{number} Example")
    found = await staff.client.get("/staff?view=all&q=person1", headers=HTML)
    assert "Person1" in found.text
    assert "Person0" not in found.text
    bad = await staff.client.get("/staff?view=all&assigned_to=nobody-at-all", headers=HTML)
    assert bad.status_code == 422
    assert "assigned_to is an email, or none" in bad.text


async def test_older_leads_pages_on_with_the_same_filters(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    await staff.new_lead(name="Other Person")
    for number in range(51):  # a page holds 50
        await staff.new_lead(name=f"Paged{number:02d} Example")
    first = await staff.client.get("/staff?view=all&q=paged", headers=HTML)
    assert first.text.count('class="lead-row') == 50
    older = re.search(r'href="(/staff\?[^"]*cursor=[^"]*)">Older leads', first.text)
    assert older
    link = unescape(older.group(1))
    assert "q=paged" in link
    assert "view=all" in link
    second = await staff.client.get(link, headers=HTML)
    assert second.text.count('class="lead-row') == 1
    assert "Paged00" in second.text  # the oldest, last
    assert "Other" not in second.text
    assert "Older leads" not in second.text


async def test_each_form_is_refused_without_the_csrf_token(desk: Any, query: Query) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead()
    other = await staff.new_lead()
    page = await staff.page(lead_id)
    version = field(page.text, "version")
    message_id = (await query("SELECT id FROM outbox LIMIT 1"))[0]["id"]
    forms = {
        "status": {"status": "contacted", "version": version},
        "assign": {"assigned_to": DESK, "version": version},
        "notes": {"text": "called"},
        f"messages/{uuid.UUID(str(message_id))}/resend": {},
        "merge": {"into": other},
        "unmerge": {},
        "withdraw-consent": {},
    }
    for action, data in forms.items():
        for token in ({}, {"csrf_token": "forged"}):
            answer = await staff.post(f"/staff/leads/{lead_id}/{action}", **data, **token)
            assert answer.status_code == 403, action
    assert (await query("SELECT count(*) AS n FROM lead_events"))[0]["n"] == 0


async def test_each_action_is_committed_and_on_the_timeline(desk: Any, query: Query) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead(phone="+12025550147")
    done = await staff.act(lead_id, "status", status="contacted")
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/leads/{lead_id}?done=status"
    assert "Status saved." in (await staff.client.get(done.headers["location"], headers=HTML)).text
    assert (await staff.act(lead_id, "assign", assigned_to=DESK)).status_code == 303
    assert (await staff.act(lead_id, "notes", text="Called, booked for Tuesday")).status_code == 303
    await query("UPDATE outbox SET status = 'delivered'")
    message = (await staff.client.get(f"/api/staff/leads/{lead_id}")).json()["notifications"][0]
    resent = await staff.act(lead_id, f"messages/{message['id']}/resend")
    assert resent.headers["location"].endswith("?done=resent")
    kinds = [entry["kind"] for entry in await staff.timeline(lead_id)]
    assert {"status", "assignment", "note", "resent"} <= set(kinds)
    page = await staff.page(lead_id)
    assert "Called, booked for Tuesday" in page.text
    assert 'href="tel:+12025550147"' in page.text
    assert 'href="sms:+12025550147"' in page.text
    assert 'href="mailto:ada.' in page.text
    actions = {row["action"] for row in await query("SELECT action FROM audit_log")}
    assert {"lead_changed", "note_added", "message_resent", "lead_viewed"} <= actions


async def test_a_withdrawal_of_consent_is_recorded_and_shown(desk: Any, query: Query) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead()
    before = await staff.page(lead_id)
    assert "They withdrew their consent" in before.text
    done = await staff.act(lead_id, "withdraw-consent")
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/leads/{lead_id}?done=withdrawn"
    page = await staff.client.get(done.headers["location"], headers=HTML)
    assert "Consent withdrawn: no more automatic emails" in page.text
    assert f"recorded by {DESK}" in page.text
    assert "They withdrew their consent" not in page.text  # once is enough
    (row,) = await query("SELECT consent_withdrawn_by FROM leads")
    assert row["consent_withdrawn_by"] == f"user:{DESK}"
    assert "consent_withdrawn" in [e["kind"] for e in await staff.timeline(lead_id)]


async def test_duplicates_merge_and_undo(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    first = await staff.new_lead(email="ada@example.com", phone="+12025550147")
    second = await staff.new_lead(email="ada@example.com", phone="+12025550198")
    older = await staff.page(first)
    assert f'href="/staff/leads/{second}"' in older.text
    assert "Merge into this lead" in older.text
    newer = await staff.page(second)
    assert f'href="/staff/leads/{first}"' in newer.text
    merged = await staff.act(second, "merge", into=first)
    assert merged.headers["location"] == f"/staff/leads/{first}?done=merged"
    assert "merged" in [e["kind"] for e in await staff.timeline(first)]
    assert "merged" in [e["kind"] for e in await staff.timeline(second)]
    again = await staff.act(first, "merge", into=second)  # merges are one level deep
    assert again.status_code == 422
    assert "Could not merge: that lead is merged into another" in again.text
    undone = await staff.act(second, "unmerge", back=first)
    assert undone.headers["location"] == f"/staff/leads/{first}?done=unmerged"
    assert "unmerged" in [e["kind"] for e in await staff.timeline(first)]


async def test_a_stale_form_never_overwrites_and_says_so(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead()
    stale = await staff.page(lead_id)
    assert (await staff.act(lead_id, "status", status="booked")).status_code == 303
    answer = await staff.post(
        f"/staff/leads/{lead_id}/status",
        csrf_token=field(stale.text, "csrf_token"),
        version=field(stale.text, "version"),
        status="unreachable",
    )
    assert answer.headers["location"] == f"/staff/leads/{lead_id}?done=stale"
    shown = await staff.client.get(answer.headers["location"], headers=HTML)
    assert "Someone else changed this lead; here it is now." in shown.text
    lead = (await staff.client.get(f"/api/staff/leads/{lead_id}")).json()
    assert lead["status"] == "booked"


async def test_a_note_refused_keeps_what_was_typed_beside_its_error(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead()
    too_long = "<b>x</b>" * 700
    answer = await staff.act(lead_id, "notes", text=too_long)
    assert answer.status_code == 422
    assert "Please keep this to 5000 characters or fewer." in answer.text
    assert "&lt;b&gt;x&lt;/b&gt;" * 700 in answer.text
    empty = await staff.act(lead_id, "notes", text="   ")
    assert "Please write the note." in empty.text


async def test_a_lead_name_is_escaped_everywhere(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead(name="<script>alert(1)</script>", message="<img src=x>")
    for page in (await staff.page(lead_id), await staff.client.get("/staff", headers=HTML)):
        assert "<script>alert" not in page.text
        assert "<img src=x>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in (await staff.page(lead_id)).text


async def test_an_unknown_lead_gets_the_staff_404_page(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    answer = await staff.page(str(uuid.uuid4()))
    assert answer.status_code == 404
    assert "There is no lead here" in answer.text
    assert answer.headers["cache-control"] == "no-store"


async def test_admins_see_who_viewed_a_lead(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in(ADMIN, Role.ADMIN)
    lead_id = await staff.new_lead()
    await staff.page(lead_id)
    page = await staff.page(lead_id)
    assert "Who has looked at this lead" in page.text
    assert ADMIN in page.text.split("Who has looked at this lead")[1]
    assert "/staff/audit" in page.text


async def test_a_disabled_account_stops_at_once(desk: Any) -> None:
    staff = await desk()
    await staff.sign_in()
    assert (await staff.client.get("/staff", headers=HTML)).status_code == 200
    await staff.use(disable_user, email=DESK, actor="cli")
    assert (await staff.client.get("/staff", headers=HTML)).status_code == 303


async def test_the_banner_warns_when_notifications_are_not_getting_through(
    desk: Any, query: Query
) -> None:
    staff = await desk()
    await staff.sign_in()
    lead_id = await staff.new_lead()
    assert "not getting through" not in (await staff.client.get("/staff", headers=HTML)).text
    staff.clock.advance(16 * 60)  # still pending, a quarter of an hour on
    page = await staff.page(lead_id)
    assert "Notifications are not getting through: 0 dead letters." in page.text
    await query("UPDATE outbox SET status = 'dead'")
    for path in ("/staff", f"/staff/leads/{lead_id}", "/staff?view=all"):
        shown = await staff.client.get(path, headers=HTML)
        assert "Notifications are not getting through: 1 dead letter." in shown.text
        assert 'href="/staff/deliveries">See Deliveries.' in shown.text
