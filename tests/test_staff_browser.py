"""The staff dashboard in a real Chromium, against `leads serve` started as an operator
would: a member of staff signs in, works a new lead and signs out; the notification
email's link leads through sign-in to the lead; a disabled account stops at once; and
axe-core finds nothing on the sign-in, list and lead pages, on a phone and a desktop.

Accounts come from `leads user add` (the password on stdin) against the server's
database, and leads from the public API. Screenshots go to $LEADS_SCREENSHOTS, or to a
temporary directory: never into the repository."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browsers import DESKTOP, PHONE, axe_violations
from tests.conftest import SECRET
from tests.servers import running_service
from tests.support import leads_env, run_leads

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Service:
    base: str
    database: Path
    screenshots: Path

    def leads(self, *args: str, stdin: str | None = None) -> None:
        env = leads_env(database_url=f"sqlite:///{self.database}", secret_key=SECRET)
        done = run_leads(*args, env=env, stdin=stdin, cwd=Path(__file__).parent)
        assert done.returncode == 0, done.stderr

    def add_user(self, email: str, role: str = "staff") -> str:
        self.leads("user", "add", email, "--role", role, stdin=PASSWORD + "\n")
        return email

    async def new_lead(self, name: str, **fields: Any) -> str:
        email = f"{uuid.uuid4().hex[:10]}@example.com"
        body = {"name": name, "email": email, "consent": True, **fields}
        async with httpx.AsyncClient(base_url=self.base) as client:
            answer = await client.post("/api/leads", json=body)
        assert answer.status_code == 201, answer.text

        def read() -> str:
            with sqlite3.connect(self.database) as conn:
                (found,) = conn.execute("SELECT id FROM leads WHERE email = ?", (email,))
                return str(uuid.UUID(str(found[0])))

        return await asyncio.to_thread(read)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database = tmp_path_factory.mktemp("staff-browser") / "leads.db"
    shots = os.environ.get("LEADS_SCREENSHOTS")
    screenshots = Path(shots) if shots else tmp_path_factory.mktemp("screenshots")
    screenshots.mkdir(parents=True, exist_ok=True)
    env = {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_LOG_LEVEL": "warning",
    }
    with running_service(env) as base:
        yield Service(base, database, screenshots)


async def open_page(browser: Browser, viewport: dict[str, int] = DESKTOP) -> BrowserContext:
    # axe is injected as an inline script, which the staff pages' policy refuses.
    context = await browser.new_context(viewport=viewport, bypass_csp=True)
    context.set_default_timeout(10_000)
    return context


async def sign_in(page: Page, email: str) -> None:
    assert urlsplit(page.url).path == "/staff/login"
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name="Sign in").click()


async def click(page: Page, name: str) -> None:
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name=name).click()


async def test_staff_sign_in_work_a_new_lead_and_sign_out(
    browser: Browser, service: Service
) -> None:
    email = service.add_user("front.desk@clinic.example")
    lead_id = await service.new_lead("Grace Hopper", phone="+12025550143")
    context = await open_page(browser, PHONE)
    page = await context.new_page()
    await page.goto(f"{service.base}/staff", wait_until="load")
    await sign_in(page, email)
    assert urlsplit(page.url).path == "/staff"

    row = page.locator(".lead-row", has=page.locator(f'a[href="/staff/leads/{lead_id}"]'))
    assert "New" in await row.inner_text()
    async with page.expect_navigation(wait_until="load"):
        await row.get_by_role("link").click()
    assert urlsplit(page.url).path == f"/staff/leads/{lead_id}"
    assert await page.get_by_role("link", name="Call +12025550143").get_attribute("href") == (
        "tel:+12025550143"
    )

    await click(page, "Contacted")
    assert "Status saved." in await page.get_by_role("status").first.inner_text()
    await page.get_by_label("Note (what was said, what happens next)").fill(
        "Called back; books next week."
    )
    await click(page, "Add note")
    assert "Note added." in await page.get_by_role("status").first.inner_text()
    timeline = await page.locator(".timeline").inner_text()
    assert "New → Contacted" in timeline
    assert "Called back; books next week." in timeline
    assert email in timeline

    await click(page, "Sign out")
    assert urlsplit(page.url).path == "/staff/login"
    await page.goto(f"{service.base}/staff/leads/{lead_id}", wait_until="load")
    assert urlsplit(page.url).path == "/staff/login"
    await context.close()


async def test_the_emails_link_leads_through_sign_in_to_the_lead(
    browser: Browser, service: Service
) -> None:
    email = service.add_user("reception@clinic.example")
    lead_id = await service.new_lead("Ada Lovelace")
    context = await open_page(browser)
    page = await context.new_page()
    await page.goto(f"{service.base}/staff/leads/{lead_id}", wait_until="load")
    await sign_in(page, email)
    assert urlsplit(page.url).path == f"/staff/leads/{lead_id}"
    assert await page.get_by_role("heading", level=1).inner_text() == "Ada Lovelace"
    await context.close()


async def test_a_disabled_accounts_open_page_stops_working_at_once(
    browser: Browser, service: Service
) -> None:
    email = service.add_user("leaving@clinic.example")
    lead_id = await service.new_lead("Alan Turing")
    context = await open_page(browser)
    page = await context.new_page()
    await page.goto(f"{service.base}/staff/leads/{lead_id}", wait_until="load")
    await sign_in(page, email)
    assert urlsplit(page.url).path == f"/staff/leads/{lead_id}"
    await asyncio.to_thread(service.leads, "user", "disable", email)
    await click(page, "Booked")
    assert urlsplit(page.url).path == "/staff/login"
    rows = await asyncio.to_thread(
        lambda: (
            sqlite3.connect(service.database)
            .execute("SELECT status FROM leads WHERE id = ?", (uuid.UUID(lead_id).hex,))
            .fetchall()
        )
    )
    assert rows == [("new",)]
    await context.close()


async def small_targets(page: Page) -> list[str]:
    """Links, buttons and fields less than 44x44 CSS px (the skip link is off-screen; a
    checkbox is tapped through its label, which is measured instead)."""
    found: list[str] = await page.evaluate(
        """() => [...document.querySelectorAll('a, button, input, select, textarea')]
            .filter(el => !el.classList.contains('skip') && el.type !== 'hidden')
            .map(el => el.type === 'checkbox' && el.labels.length ? el.labels[0] : el)
            .filter(el => { const r = el.getBoundingClientRect();
                            return r.width < 44 || r.height < 44; })
            .map(el => el.outerHTML.slice(0, 80))"""
    )
    return found


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_axe_finds_no_violations_on_the_staff_pages(
    browser: Browser, service: Service, viewport: dict[str, int]
) -> None:
    width = viewport["width"]
    email = service.add_user(f"axe.{width}@clinic.example")
    lead_id = await service.new_lead("Mary Seacole", phone="+12025550188", message="Knee pain")
    other = await service.new_lead("Mary Seacole")  # unrelated: no duplicate
    assert other != lead_id
    context = await open_page(browser, viewport)
    page = await context.new_page()
    await page.goto(f"{service.base}/staff/leads/{lead_id}", wait_until="load")
    assert await axe_violations(page) == []
    await page.screenshot(path=service.screenshots / f"login-{width}.png", full_page=True)
    await sign_in(page, email)
    await click(page, "Contacted")  # a notice and a longer timeline
    for name, path in (("lead", f"/staff/leads/{lead_id}"), ("list", "/staff?view=all")):
        await page.goto(f"{service.base}{path}", wait_until="load")
        assert await axe_violations(page) == [], name
        assert await small_targets(page) == [], name
        await page.screenshot(path=service.screenshots / f"{name}-{width}.png", full_page=True)
    await context.close()
