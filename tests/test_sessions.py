"""Signing in and out, sessions, CSRF and the sign-in throttle, through HTTP.

Accounts are made with the use case on the test's database, at the fake clock's time. Two
small routes are added to the app under test: a page behind ``require_page_actor`` (as
the dashboard's lead page will be) and a JSON change behind ``require_actor(write=True)``
(as the staff API's are)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from leads.app import create_app
from leads.core.vocabulary import Role, TokenScope
from leads.staff.access import require_actor, require_page_actor
from leads.staff.accounts import add_user as add_user_use_case
from leads.staff.accounts import change_password, disable_user, needs_rehash
from leads.staff.login import DUMMY_HASH
from leads.staff.tokens import create_token
from leads.storage.database import Database
from tests.clock import FakeClock
from tests.conftest import Query, make_settings, migrate

PASSWORD = "correct horse battery"
EMAIL = "desk@clinic.example"
CLIENT = "203.0.113.7"


async def lead_page(request: Request) -> Response:
    actor = await require_page_actor(request)
    return PlainTextResponse(f"lead {request.path_params['id']} for {actor.label}")


async def change_something(request: Request) -> Response:
    actor = await require_actor(request, write=True)
    return JSONResponse({"actor": actor.label})


class Staff:
    """An app on the test's database with a fake clock, and a browser-like client for it."""

    def __init__(self, database_url: str, clock: FakeClock, client: httpx.AsyncClient) -> None:
        self.database_url = database_url
        self.clock = clock
        self.client = client

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now(), UTC)

    async def use(self, use_case: Any, **arguments: Any) -> Any:
        database = Database.from_settings(make_settings(self.database_url))
        try:
            async with database.writing() as session:
                return await use_case(session=session, now=self.now(), **arguments)
        finally:
            await database.close()

    async def add_user(self, email: str = EMAIL, role: Role = Role.STAFF) -> None:
        await self.use(add_user_use_case, email=email, password=PASSWORD, role=role, actor="cli")

    async def sign_in(
        self,
        email: str = EMAIL,
        password: str = PASSWORD,
        *,
        next_path: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        page = await self.client.get("/staff/login")
        assert page.status_code == 200, page.text
        data = {"login_token": form_value(page.text, "login_token"), "email": email}
        data["password"] = password
        if next_path is not None:
            data["next"] = next_path
        return await self.client.post("/staff/login", data=data, headers=headers or {})

    def send_cookie(self, value: str) -> None:
        """From now on the browser sends this session cookie (and no other cookie)."""
        self.client.cookies.clear()
        self.client.cookies.set("leads_session", value, domain="testserver.local")

    async def page(self) -> httpx.Response:
        return await self.client.get("/staff/leads/1")


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no field {name}"
    return found.group(1)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


@pytest.fixture
async def staff_app(database_url: str) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:

        async def build(base_url: str = "http://testserver", **overrides: Any) -> Staff:
            settings = make_settings(database_url, **overrides)
            await migrate(settings)
            clock = FakeClock()
            app = create_app(settings, clock=clock)
            app.router.routes.append(Route("/staff/leads/{id}", lead_page))
            app.router.routes.append(Route("/staff/probe", change_something, methods=["POST"]))
            await stack.enter_async_context(app.router.lifespan_context(app))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app, client=(CLIENT, 50000)),
                    base_url=base_url,
                )
            )
            return Staff(database_url, clock, client)

        yield build


# --- signing in ------------------------------------------------------------------------


async def test_the_sign_in_page_is_labelled_and_has_the_staff_headers(staff_app: Any) -> None:
    staff = await staff_app()
    page = await staff.client.get("/staff/login")
    assert page.status_code == 200
    assert '<label for="email">Email</label>' in page.text
    assert '<label for="password">Password</label>' in page.text
    assert 'autocomplete="username"' in page.text
    assert 'autocomplete="current-password"' in page.text
    assert "/static/staff.css" in page.text
    assert "<script" not in page.text
    assert "style=" not in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    css = await staff.client.get("/static/staff.css")
    assert css.status_code == 200


async def test_signing_in_sets_a_session_cookie_and_opens_staff_pages(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    assert (await staff.page()).status_code == 303
    signed_in = await staff.sign_in(email=" Desk@Clinic.Example ")
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/staff"
    cookie = set_cookies(signed_in)["leads_session"]
    attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert sorted(attributes) == ["httponly", "path=/", "samesite=lax"]
    value = staff.client.cookies["leads_session"]
    assert len(value) >= 43

    page = await staff.page()
    assert page.status_code == 200
    assert page.text == f"lead 1 for user:{EMAIL}"
    [row] = await query("SELECT id, address FROM staff_sessions")
    assert row == {"id": hashlib.sha256(value.encode()).hexdigest(), "address": CLIENT}
    audit = await query("SELECT actor, action, address FROM audit_log WHERE action = 'login'")
    assert audit == [{"actor": f"user:{EMAIL}", "action": "login", "address": CLIENT}]


@pytest.mark.parametrize(
    ("base_url", "overrides"),
    [
        ("https://testserver", {}),
        ("http://testserver", {"public_url": "https://leads.clinic.example"}),
    ],
    ids=["https request", "https public url"],
)
async def test_over_https_the_cookie_is_secure_and_host_only(
    staff_app: Any, base_url: str, overrides: dict[str, str]
) -> None:
    staff = await staff_app(base_url=base_url, **overrides)
    await staff.add_user()
    page = await staff.client.get("/staff/login")
    assert "__Host-leads_login" in set_cookies(page)
    token = form_value(page.text, "login_token")
    # Sent by hand: a browser would not send a Secure cookie over plain http.
    login_cookie = set_cookies(page)["__Host-leads_login"].split(";")[0].split("=", 1)[1]
    signed_in = await staff.client.post(
        "/staff/login",
        data={"login_token": token, "email": EMAIL, "password": PASSWORD},
        headers={"Cookie": f"__Host-leads_login={login_cookie}"},
    )
    assert signed_in.status_code == 303, signed_in.text
    cookies = set_cookies(signed_in)
    assert "leads_session" not in cookies
    attributes = [part.strip().lower() for part in cookies["__Host-leads_session"].split(";")[1:]]
    assert sorted(attributes) == ["httponly", "path=/", "samesite=lax", "secure"]


async def test_every_sign_in_starts_a_new_session_and_ends_the_one_sent(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    staff.send_cookie("planted-by-someone-else")
    assert (await staff.sign_in()).status_code == 303
    first = staff.client.cookies["leads_session"]
    assert first != "planted-by-someone-else"
    assert (await staff.sign_in()).status_code == 303
    second = staff.client.cookies["leads_session"]
    assert second != first
    rows = await query("SELECT id FROM staff_sessions")
    assert rows == [{"id": hashlib.sha256(second.encode()).hexdigest()}]
    staff.send_cookie(first)
    assert (await staff.page()).status_code == 303


async def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    wrong = await staff.sign_in(password="not the password")
    unknown = await staff.sign_in(email="nobody@clinic.example")
    assert wrong.status_code == unknown.status_code == 200
    assert "That email and password do not match" in wrong.text
    assert wrong.text.replace(EMAIL, "") == unknown.text.replace("nobody@clinic.example", "")
    assert "leads_session" not in staff.client.cookies
    failed = await query("SELECT actor, address, detail FROM audit_log ORDER BY id")
    failed = [row for row in failed if row["actor"] == "anonymous"]
    assert [(row["actor"], row["address"]) for row in failed] == [("anonymous", CLIENT)] * 2
    details = [str(row["detail"]) for row in failed]
    assert "user_id" in details[0]
    assert details[1] == "{}"
    assert not any("nobody" in detail or "desk" in detail for detail in details)
    # The dummy hash an unknown account is checked against costs what a real one does.
    assert not needs_rehash(DUMMY_HASH)


async def test_a_disabled_account_cannot_sign_in(staff_app: Any) -> None:
    staff = await staff_app()
    await staff.add_user()
    await staff.use(disable_user, email=EMAIL, actor="cli")
    refused = await staff.sign_in()
    assert refused.status_code == 200
    assert "That email and password do not match" in refused.text


async def test_a_hash_with_weaker_parameters_is_upgraded_at_sign_in(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await query("UPDATE users SET password_hash = :weak", weak=weak)
    assert (await staff.sign_in()).status_code == 303
    [row] = await query("SELECT password_hash FROM users")
    assert row["password_hash"] != weak
    assert row["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    staff.client.cookies.clear()
    assert (await staff.sign_in()).status_code == 303  # the new hash is the same password


# --- where sign-in leads ---------------------------------------------------------------


async def test_a_staff_page_sends_a_browser_through_sign_in_and_back(staff_app: Any) -> None:
    staff = await staff_app()
    await staff.add_user()
    page = await staff.client.get("/staff/leads/42?tab=notes", headers={"accept": "text/html"})
    assert page.status_code == 303
    assert page.headers["location"] == "/staff/login?next=%2Fstaff%2Fleads%2F42%3Ftab%3Dnotes"
    login = await staff.client.get(page.headers["location"])
    assert form_value(login.text, "next") == "/staff/leads/42?tab=notes"
    signed_in = await staff.client.post(
        "/staff/login",
        data={
            "login_token": form_value(login.text, "login_token"),
            "next": form_value(login.text, "next").replace("&amp;", "&"),
            "email": EMAIL,
            "password": PASSWORD,
        },
    )
    assert signed_in.headers["location"] == "/staff/leads/42?tab=notes"
    lead = await staff.client.get(signed_in.headers["location"])
    assert lead.text == f"lead 42 for user:{EMAIL}"


@pytest.mark.parametrize(
    ("next_path", "goes_to"),
    [
        ("/staff/leads/7?x=1", "/staff/leads/7?x=1"),
        ("//evil.example", "/staff"),
        ("https://evil.example", "/staff"),
        ("/\\evil.example", "/staff"),
        ("javascript:alert(1)", "/staff"),
        ("/staff\r\nSet-Cookie: x=1", "/staff"),
        ("", "/staff"),
    ],
)
async def test_next_is_followed_only_to_a_path_on_this_site(
    staff_app: Any, next_path: str, goes_to: str
) -> None:
    staff = await staff_app()
    await staff.add_user()
    signed_in = await staff.sign_in(next_path=next_path)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == goes_to


# --- how sessions end ------------------------------------------------------------------


async def test_a_session_ends_after_the_idle_time(staff_app: Any) -> None:
    staff = await staff_app(session_idle_minutes=30)
    await staff.add_user()
    await staff.sign_in()
    for _ in range(3):  # busy: each request keeps it going
        staff.clock.advance(29 * 60)
        assert (await staff.page()).status_code == 200
    staff.clock.advance(30 * 60)
    assert (await staff.page()).status_code == 303


async def test_a_session_ends_at_its_absolute_limit_however_busy(staff_app: Any) -> None:
    staff = await staff_app(session_max_hours=2)
    await staff.add_user()
    await staff.sign_in()
    for _ in range(3):
        staff.clock.advance(39 * 60)
        assert (await staff.page()).status_code == 200
    staff.clock.advance(4 * 60)  # 2 h 1 min after signing in
    assert (await staff.page()).status_code == 303


async def test_disabling_an_account_ends_its_sessions_at_once(staff_app: Any, query: Query) -> None:
    staff = await staff_app()
    await staff.add_user()
    await staff.sign_in()
    assert (await staff.page()).status_code == 200
    await staff.use(disable_user, email=EMAIL, actor="cli")
    assert (await staff.page()).status_code == 303
    assert await query("SELECT id FROM staff_sessions") == []


async def test_a_password_change_ends_every_session(staff_app: Any, query: Query) -> None:
    staff = await staff_app()
    await staff.add_user()
    await staff.sign_in()
    other = httpx.AsyncClient(transport=staff.client._transport, base_url="http://testserver")
    async with other:
        second = Staff(staff.database_url, staff.clock, other)
        await second.sign_in()
        assert len(await query("SELECT id FROM staff_sessions")) == 2
        await staff.use(change_password, email=EMAIL, password="a new passphrase", actor="cli")
        assert (await staff.page()).status_code == 303
        assert (await second.page()).status_code == 303
    assert await query("SELECT id FROM staff_sessions") == []
    refused = await staff.sign_in()
    assert "do not match" in refused.text
    assert (await staff.sign_in(password="a new passphrase")).status_code == 303


async def test_signing_out_ends_the_session_and_clears_the_cookie(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    await staff.sign_in()
    value = staff.client.cookies["leads_session"]
    refused = await staff.client.post("/staff/logout", data={"csrf_token": ""})
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert len(await query("SELECT id FROM staff_sessions")) == 1

    csrf = (await query("SELECT csrf_token FROM staff_sessions"))[0]["csrf_token"]
    out = await staff.client.post("/staff/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert out.headers["location"] == "/staff/login"
    assert 'leads_session=""' in set_cookies(out)["leads_session"]
    assert await query("SELECT id FROM staff_sessions") == []
    staff.send_cookie(value)
    assert (await staff.page()).status_code == 303
    [entry] = await query("SELECT actor, address FROM audit_log WHERE action = 'logout'")
    assert entry == {"actor": f"user:{EMAIL}", "address": CLIENT}


# --- CSRF ------------------------------------------------------------------------------


async def test_a_change_through_a_session_needs_its_csrf_token_and_our_origin(
    staff_app: Any, query: Query
) -> None:
    staff = await staff_app()
    await staff.add_user()
    await staff.sign_in()
    csrf = (await query("SELECT csrf_token FROM staff_sessions"))[0]["csrf_token"]

    async def probe(**headers: str) -> httpx.Response:
        return await staff.client.post("/staff/probe", json={}, headers=headers)

    for refused in (
        await probe(),
        await probe(**{"X-CSRF-Token": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")}),
        await probe(**{"X-CSRF-Token": csrf, "Origin": "https://evil.example"}),
        await probe(**{"X-CSRF-Token": csrf, "Origin": "null"}),
        await probe(**{"X-CSRF-Token": csrf, "Sec-Fetch-Site": "cross-site"}),
    ):
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "csrf_failed"
    for accepted in (
        await probe(**{"X-CSRF-Token": csrf}),
        await probe(
            **{"X-CSRF-Token": csrf, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
        ),
    ):
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"actor": f"user:{EMAIL}"}


async def test_a_token_needs_no_csrf_token_and_no_session_is_anonymous(staff_app: Any) -> None:
    staff = await staff_app()
    token = await staff.use(create_token, name="crm", scope=TokenScope.WRITE, actor="cli")
    staff.client.cookies.clear()
    answer = await staff.client.post(
        "/staff/probe", json={}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200
    assert answer.json() == {"actor": "token:crm"}
    anonymous = await staff.client.post("/staff/probe", json={})
    assert anonymous.status_code == 401


async def test_the_sign_in_form_refuses_posts_from_elsewhere(staff_app: Any) -> None:
    staff = await staff_app()
    await staff.add_user()
    data = {"email": EMAIL, "password": PASSWORD}
    no_token = await staff.client.post("/staff/login", data=data)
    assert no_token.status_code == 403
    assert no_token.json()["code"] == "csrf_failed"
    page = await staff.client.get("/staff/login")
    token = form_value(page.text, "login_token")
    cross = await staff.client.post(
        "/staff/login",
        data={**data, "login_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    forged = await staff.client.post("/staff/login", data={**data, "login_token": "0" * 64})
    assert forged.status_code == 403
    assert "leads_session" not in staff.client.cookies
    ours = await staff.client.post(
        "/staff/login",
        data={**data, "login_token": token},
        headers={"Origin": "http://testserver"},
    )
    assert ours.status_code == 303


# --- throttling ------------------------------------------------------------------------


async def test_an_account_is_locked_after_five_failures_even_for_the_right_password(
    staff_app: Any,
) -> None:
    staff = await staff_app(trusted_proxies=CLIENT)
    await staff.add_user()
    for attempt in range(5):  # from five addresses: the account's own limit
        headers = {"X-Forwarded-For": f"198.51.100.{attempt}"}
        failed = await staff.sign_in(password="wrong password!", headers=headers)
        assert failed.status_code == 200
    locked = await staff.sign_in(headers={"X-Forwarded-For": "198.51.100.9"})
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60
    assert "leads_session" not in staff.client.cookies

    for _ in range(5):
        await staff.sign_in(email="ghost@clinic.example", password="whatever it is")
    ghost = await staff.sign_in(email="ghost@clinic.example")
    assert ghost.status_code == 429
    assert locked.text.replace(EMAIL, "") == ghost.text.replace("ghost@clinic.example", "")
    assert "Too many failed sign-ins" in locked.text

    staff.clock.advance(15 * 60 + 1)
    assert (await staff.sign_in()).status_code == 303


async def test_an_address_is_locked_after_twenty_failures(staff_app: Any) -> None:
    staff = await staff_app()
    await staff.add_user()
    for attempt in range(20):  # a different account each time
        failed = await staff.sign_in(email=f"guess{attempt}@clinic.example")
        assert failed.status_code == 200
    locked = await staff.sign_in()
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    staff.clock.advance(15 * 60 + 1)
    assert (await staff.sign_in()).status_code == 303
