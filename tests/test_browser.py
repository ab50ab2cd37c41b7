"""The hosted form in a real Chromium, against `leads serve` started as an operator would:
a visitor on a phone, with the keyboard, without JavaScript, and an axe-core audit."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Request

from tests.browsers import PHONE, axe_violations
from tests.conftest import SECRET
from tests.servers import running_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUMMARY_FOCUSED = "document.activeElement && document.activeElement.id === 'error-summary'"


@dataclass(frozen=True)
class Service:
    base: str
    database: Path

    @property
    def form(self) -> str:
        return f"{self.base}/f/dry-needling"

    async def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with sqlite3.connect(self.database) as conn:
                conn.row_factory = sqlite3.Row
                return [dict(row) for row in conn.execute(sql, params)]

        return await asyncio.to_thread(read)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    database = tmp_path_factory.mktemp("browser") / "leads.db"
    env = {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",  # one visitor address submits many times here
        "LEADS_MIN_FILL_SECONDS": "0",  # Playwright types faster than any person
        "LEADS_LOG_LEVEL": "warning",
    }
    with running_service(env) as base:
        yield Service(base, database)


@dataclass
class Visit:
    page: Page
    requests: list[str]

    def hosts(self) -> set[str]:
        return {urlsplit(url).netloc for url in self.requests}


async def open_visit(
    browser: Browser, *, viewport: dict[str, int] = PHONE, **options: Any
) -> tuple[BrowserContext, Visit]:
    context = await browser.new_context(viewport=viewport, **options)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    requests: list[str] = []

    def record(request: Request) -> None:
        requests.append(request.url)

    page.on("request", record)
    return context, Visit(page, requests)


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[Visit]:
    """A phone-sized visitor with JavaScript off: the form must not need it."""
    context, visit = await open_visit(
        browser, is_mobile=True, has_touch=True, java_script_enabled=False
    )
    yield visit
    await context.close()


async def submit(page: Page) -> None:
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name="Send my request").click()


async def test_a_phone_visitor_sends_the_form_and_lands_on_thanks(
    phone: Visit, service: Service
) -> None:
    page = phone.page
    response = await page.goto(f"{service.form}?utm_source=leaflet", wait_until="load")
    assert response is not None
    assert response.status == 200
    assert await page.title() == "Learn more about dry needling"

    # Labels focus their fields; Tab moves through them in reading order.
    await page.get_by_text("Your name", exact=False).first.click()
    await page.keyboard.type("Grace Hopper")
    await page.keyboard.press("Tab")
    await page.keyboard.type("grace.phone@example.com")
    await page.keyboard.press("Tab")
    await page.keyboard.type("(202) 555-0143")
    await page.get_by_label("Text message").check()
    await page.get_by_label("What would you like help with?").select_option("Headaches")
    await page.get_by_label("Anything you would like us to know?").click()
    await page.keyboard.type("Mostly in the mornings.")
    await page.get_by_text("I agree that the clinic may store").click()  # the label ticks it
    assert await page.get_by_role("checkbox").is_checked()
    await submit(page)

    assert urlsplit(page.url).path == "/f/dry-needling/thanks", await page.inner_text("main")
    assert "Thank you" in await page.get_by_role("heading", level=1).inner_text()
    rows = await service.rows(
        "SELECT name, phone, preferred_contact, interest, message, utm_source, spam "
        "FROM leads WHERE email = ?",
        "grace.phone@example.com",
    )
    assert rows == [
        {
            "name": "Grace Hopper",
            "phone": "+12025550143",
            "preferred_contact": "text",
            "interest": "Headaches",
            "message": "Mostly in the mornings.",
            "utm_source": "leaflet",
            "spam": 0,
        }
    ]
    # Everything the visit loaded came from the service itself.
    assert len(phone.requests) >= 3
    assert phone.hosts() == {urlsplit(service.base).netloc}


async def test_an_empty_submit_focuses_the_summary_whose_links_reach_the_fields(
    phone: Visit, service: Service
) -> None:
    page = phone.page
    await page.goto(service.form, wait_until="load")
    await submit(page)

    await page.wait_for_function(SUMMARY_FOCUSED)
    summary = page.locator("#error-summary")
    assert await summary.get_attribute("role") == "alert"
    assert await page.title() == "Error: Learn more about dry needling"
    for field_id in ("name", "email", "phone", "consent"):
        assert await page.locator(f"#{field_id}").get_attribute("aria-invalid") == "true"
    assert await page.locator("#message").get_attribute("aria-invalid") is None

    links = summary.get_by_role("link")
    assert await links.count() == 3
    for index, (target, label) in enumerate([("name", True), ("email", True), ("consent", False)]):
        await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await links.nth(index).click()
        await page.wait_for_function(f"location.hash === '#{target}'")
        field = page.locator(f"#{target}")
        assert await field.evaluate("el => el.matches(':target')")
        await wait_in_viewport(page, f"#{target}")
        if label:  # its label, hint and error scroll into view with it
            await wait_in_viewport(page, f"label[for={target}]")
        # Chrome moves focus to the field itself: the visitor can type at once.
        await page.wait_for_function(f"document.activeElement.id === '{target}'")


async def wait_in_viewport(page: Page, selector: str) -> None:
    await page.wait_for_function(
        """selector => {
            const box = document.querySelector(selector).getBoundingClientRect();
            return box.top >= 0 && box.bottom <= window.innerHeight;
        }""",
        arg=selector,
    )


async def test_what_was_typed_is_kept_after_an_error(phone: Visit, service: Service) -> None:
    page = phone.page
    await page.goto(service.form, wait_until="load")
    await page.get_by_label("Your name").fill("Katherine Johnson")
    await page.get_by_label("Email address").fill("katherine@example")
    await page.get_by_label("Phone call").check()
    await page.get_by_label("What would you like help with?").select_option("Sports injury")
    await page.get_by_label("Anything you would like us to know?").fill("Ran too far.\nOuch.")
    await submit(page)  # the email has no dot in its domain and consent is not given

    await page.wait_for_function(SUMMARY_FOCUSED)
    assert await page.get_by_label("Your name").input_value() == "Katherine Johnson"
    assert await page.get_by_label("Email address").input_value() == "katherine@example"
    assert await page.get_by_label("Phone call").is_checked()
    assert await page.get_by_label("What would you like help with?").input_value() == (
        "Sports injury"
    )
    message = page.get_by_label("Anything you would like us to know?")
    assert await message.input_value() == "Ran too far.\nOuch."
    # Phone was preferred but not given: the phone field says so, by name, in the summary.
    summary = await page.locator("#error-summary").inner_text()
    assert "Phone number" in summary
    assert "Email address" in summary

    await page.get_by_label("Email address").fill("katherine@example.com")
    await page.get_by_label("Phone number").fill("202 555 0199")
    await page.get_by_role("checkbox").check()
    await submit(page)
    assert urlsplit(page.url).path == "/f/dry-needling/thanks", await page.inner_text("main")
    rows = await service.rows(
        "SELECT message, preferred_contact FROM leads WHERE email = ?", "katherine@example.com"
    )
    assert rows == [{"message": "Ran too far.\nOuch.", "preferred_contact": "phone"}]


@pytest.mark.parametrize("width", [320, 390, 1280])
async def test_nothing_scrolls_sideways(browser: Browser, service: Service, width: int) -> None:
    context, visit = await open_visit(browser, viewport={"width": width, "height": 700})
    try:
        page = visit.page
        await page.goto(service.form, wait_until="load")
        assert await sideways_overflow(page) == 0
        await submit(page)
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert await sideways_overflow(page) == 0
        # Text a visitor reads is never smaller than 16px on any screen.
        smallest = await page.evaluate(
            """() => Math.min(...[...document.querySelectorAll('main *')]
                .filter(el => el.offsetParent !== null && el.textContent.trim())
                .map(el => parseFloat(getComputedStyle(el).fontSize)))"""
        )
        assert smallest >= 16
    finally:
        await context.close()


async def sideways_overflow(page: Page) -> int:
    return int(
        await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    )


# Every control a visitor can tap: the honeypot is hidden from people and assistive
# technology alike (aria-hidden), so it is not one.
SMALL_TARGETS = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter(el => el.type !== 'hidden' && !el.closest('[aria-hidden=true]'))
    .map(el => {
        const own = el.getBoundingClientRect();
        // A tap on a label works its control: the larger of the two is the tappable area.
        const box = [own, ...[...el.labels].map(l => l.getBoundingClientRect())]
            .reduce((a, b) => b.width * b.height > a.width * a.height ? b : a);
        // A radio or checkbox is tapped through its label row, which takes in the box itself.
        const encloses = box.left <= own.left && box.right >= own.right
            && box.top <= own.top && box.bottom >= own.bottom;
        return {id: el.id || el.textContent.trim(), width: box.width, height: box.height,
                encloses};
    })
    .filter(t => t.width < 44 || t.height < 44 || !t.encloses)"""


async def small_targets(page: Page) -> list[dict[str, Any]]:
    """The controls whose tappable area is under 44x44 CSS px (WCAG 2.5.5)."""
    targets: list[dict[str, Any]] = await page.evaluate(SMALL_TARGETS)
    return targets


@pytest.mark.parametrize(
    "viewport", [PHONE, {"width": 1280, "height": 900}], ids=["phone", "desktop"]
)
async def test_every_control_is_at_least_44px_to_tap(
    browser: Browser, service: Service, viewport: dict[str, int]
) -> None:
    context, visit = await open_visit(browser, viewport=viewport)
    try:
        page = visit.page
        await page.goto(service.form, wait_until="load")
        controls = await page.locator("input:not([type=hidden]), select, textarea, button").count()
        assert controls >= 10  # name, email, phone, 4 radios, interest, message, consent...
        assert await small_targets(page) == []

        await submit(page)  # with every error shown, the rows are still as large
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert await small_targets(page) == []

        # The check notices a control that shrinks back to its bare 24px label row.
        await page.evaluate(
            "document.querySelector('label[for=preferred_contact-email]').style.cssText = "
            "'min-height: 0; padding: 0 0 0 2.25rem'"
        )
        assert [t["id"] for t in await small_targets(page)] == ["preferred_contact-email"]

        for path in ("/f/dry-needling/thanks", "/f/no-such-form"):
            await page.goto(f"{service.base}{path}", wait_until="load")
            assert await small_targets(page) == [], path
    finally:
        await context.close()


@pytest.mark.parametrize(
    "viewport", [PHONE, {"width": 1280, "height": 900}], ids=["phone", "desktop"]
)
async def test_axe_finds_no_violations(
    browser: Browser, service: Service, viewport: dict[str, int]
) -> None:
    # The page's CSP allows no script at all; the audit's own script is let in here only.
    context, visit = await open_visit(browser, viewport=viewport, bypass_csp=True)
    try:
        page = visit.page
        await page.goto(service.form, wait_until="load")
        assert await axe_violations(page) == []

        await submit(page)
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert await page.locator("[aria-invalid=true]").count() >= 3
        assert await axe_violations(page) == []

        await page.goto(f"{service.form}/thanks", wait_until="load")
        assert await axe_violations(page) == []

        await page.goto(f"{service.base}/f/no-such-form", wait_until="load")
        assert await axe_violations(page) == []
    finally:
        await context.close()


async def test_the_audit_can_fail(browser: Browser, service: Service) -> None:
    """The audit above is only worth something if it notices a broken page."""
    context, visit = await open_visit(browser, bypass_csp=True)
    try:
        page = visit.page
        await page.goto(service.form, wait_until="load")
        await page.evaluate("document.querySelector('label[for=email]').remove()")
        assert "label" in {v["id"] for v in await axe_violations(page)}
    finally:
        await context.close()
