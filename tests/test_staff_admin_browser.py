"""The spam folder, deliveries, response times and audit log in a real Chromium, against
`leads serve` started as an operator would, with some data on every page: axe-core finds
nothing at phone and desktop widths, every control is at least 44x44 CSS px, and a
screenshot of each page is saved (to LEADS_SCREENSHOTS, else a temporary directory; never
into the repository). Accounts come from `leads user add`, leads from the public API."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.browsers import DESKTOP, PHONE, axe_violations
from tests.conftest import SECRET
from tests.servers import running_service
from tests.support import leads_env, run_leads

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VIEWPORTS = [pytest.param(PHONE, id="phone"), pytest.param(DESKTOP, id="desktop")]
PAGES = ["/staff/spam", "/staff/deliveries", "/staff/response-times", "/staff/audit"]
ADMIN = "owner@clinic.example"
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Service:
    base: str
    database: Path

    def execute(self, sql: str, *params: Any) -> None:
        with sqlite3.connect(self.database) as conn:
            conn.execute(sql, params)


def add_user(database: Path, email: str, role: str) -> None:
    env = leads_env(database_url=f"sqlite:///{database}", secret_key=SECRET)
    added = run_leads("user", "add", email, "--role", role, env=env, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database = tmp_path_factory.mktemp("admin-browser") / "leads.db"
    env = {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_LOG_LEVEL": "warning",
        "LEADS_DISPATCHER": "worker",  # nothing delivers: pending messages stay on the page
        "LEADS_OPENING_HOURS": "Mon-Fri 08:00-18:00; Sat 09:00-12:00",
        "LEADS_TIMEZONE": "Europe/London",
    }
    with running_service(env) as base:
        add_user(database, ADMIN, "admin")
        service = Service(base, database)
        with httpx.Client(base_url=base, timeout=30) as client:
            people = ["Grace Hopper", "Alan Turing", "Katherine Johnson", "Edsger Dijkstra"]
            for n, name in enumerate(people):
                body = {"name": name, "email": f"p{n}@example.com", "consent": True}
                if n == 0:
                    body["website"] = "http://spam.example"  # flagged: in the spam folder
                assert client.post("/api/leads", json=body).status_code == 201
        # One dead letter, one delivered, the rest pending; one lead answered.
        service.execute(
            "UPDATE outbox SET status = 'dead', attempts = 7, last_error = 'SMTP 550' "
            "WHERE rowid = (SELECT min(rowid) FROM outbox)"
        )
        service.execute(
            "UPDATE outbox SET status = 'delivered', delivered_at = created_at "
            "WHERE rowid = (SELECT max(rowid) FROM outbox)"
        )
        service.execute(
            "UPDATE leads SET status = 'contacted', first_response_at = created_at "
            "WHERE spam = 0 AND rowid = (SELECT min(rowid) FROM leads WHERE spam = 0)"
        )
        yield service


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("LEADS_SCREENSHOTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


async def signed_in(
    browser: Browser, service: Service, viewport: dict[str, int], *, javascript: bool = True
) -> Page:
    """Signed in as the admin. The pages' CSP lets no script in; axe's own is allowed here
    only (bypass_csp), and the pages run none of theirs on these pages either way."""
    context = await browser.new_context(
        viewport=viewport, java_script_enabled=javascript, bypass_csp=javascript
    )
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{service.base}/staff/login", wait_until="load")
    await page.get_by_label("Email").fill(ADMIN)
    await page.get_by_label("Password").fill(PASSWORD)
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name="Sign in").click()
    assert "/staff/login" not in page.url
    return page


# As tests/test_browser.py measures the form's controls, with links counted too (staff tap
# them as much as buttons); the skip link waits off screen until it is focused.
SMALL_TARGETS = """() => [...document.querySelectorAll('a[href], input, select, textarea, button')]
    .filter(el => el.type !== 'hidden' && !el.closest('[aria-hidden=true]'))
    .filter(el => { const r = el.getBoundingClientRect(); return r.right > 0 && r.bottom > 0; })
    .map(el => {
        const own = el.getBoundingClientRect();
        const box = [own, ...[...(el.labels || [])].map(l => l.getBoundingClientRect())]
            .reduce((a, b) => b.width * b.height > a.width * a.height ? b : a);
        const encloses = box.left <= own.left && box.right >= own.right
            && box.top <= own.top && box.bottom >= own.bottom;
        return {id: el.id || el.textContent.trim(), width: box.width, height: box.height,
                encloses};
    })
    .filter(t => t.width < 44 || t.height < 44 || !t.encloses)"""


# Elements that reach past the right edge of the screen (a page scrolling sideways).
WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll('body *')]
    .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1
        && !el.closest('.table-wrap'))
    .map(el => el.tagName + '.' + el.className)"""


async def test_the_pages_have_data_to_show(browser: Browser, service: Service) -> None:
    page = await signed_in(browser, service, DESKTOP)
    try:
        await page.goto(f"{service.base}/staff/spam", wait_until="load")
        assert await page.get_by_role("button", name="Not spam").count() == 1
        await page.goto(f"{service.base}/staff/deliveries", wait_until="load")
        assert await page.get_by_role("button", name="Retry").count() == 2  # one and all
        await page.goto(f"{service.base}/staff/response-times", wait_until="load")
        assert await page.locator("caption").inner_text() != ""
        await page.goto(f"{service.base}/staff/audit", wait_until="load")
        assert await page.locator("tbody tr").count() >= 1
    finally:
        await page.context.close()


@pytest.mark.parametrize("viewport", VIEWPORTS)
async def test_axe_finds_nothing_and_every_control_is_44px(
    browser: Browser, service: Service, viewport: dict[str, int], screenshots: Path
) -> None:
    page = await signed_in(browser, service, viewport)
    try:
        for path in PAGES:
            response = await page.goto(f"{service.base}{path}", wait_until="load")
            assert response is not None
            assert response.status == 200, path
            name = f"{path.rsplit('/', 1)[1]}-{viewport['width']}.png"
            await page.screenshot(path=screenshots / name, full_page=True)
            assert await axe_violations(page) == [], path
            assert await page.evaluate(SMALL_TARGETS) == [], path
            wide = await page.evaluate(WIDER_THAN_THE_SCREEN)
            assert wide == [], path  # wide tables scroll inside their own region
    finally:
        await page.context.close()


async def test_the_small_target_check_notices_a_small_link(
    browser: Browser, service: Service
) -> None:
    page = await signed_in(browser, service, PHONE)
    try:
        await page.goto(f"{service.base}/staff/deliveries", wait_until="load")
        await page.evaluate(
            "document.querySelector('.card dd a').style.cssText = 'min-height: 0; min-width: 0'"
        )
        assert len(await page.evaluate(SMALL_TARGETS)) == 1
    finally:
        await page.context.close()


async def test_not_spam_works_without_javascript(browser: Browser, service: Service) -> None:
    page = await signed_in(browser, service, PHONE, javascript=False)
    try:
        await page.goto(f"{service.base}/staff/spam", wait_until="load")
        assert await page.get_by_text("Grace").count() >= 1
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Not spam").click()
        assert page.url.endswith("/staff/spam?done=released")
        assert await page.locator("p[role=status]").inner_text() == (
            "Moved out of spam. The clinic's notification is on its way."
        )
        rows = await asyncio.to_thread(_spam_count, service.database)
        assert rows == 0
    finally:
        await page.context.close()


def _spam_count(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM leads WHERE spam = 1").fetchone()[0])
