"""Each way a clinic's web developer puts the form on their site, in a real Chromium: the
hosted form, the iframe that fits itself, a plain HTML form with embed.js, and the fetch()
example. The site is a second local server on another origin (http://localhost, while leads
is on http://127.0.0.1), as a clinic's site would be.

These are also the docs' tests: the iframe snippet (docs/forms.md), the plain HTML form and
the fetch() example (docs/api.md) are cut from the docs as they are written, with their
placeholder address swapped for the live server's, so a documented snippet that stops
working fails here."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
)
from playwright.async_api import Error as PlaywrightError

from tests.browsers import DESKTOP, PHONE, axe_violations, chromium
from tests.conftest import SECRET
from tests.servers import free_port, running_service
from tests.support import eventually

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS = Path(__file__).resolve().parent.parent / "docs"
PLACEHOLDER = "https://leads.clinic.example"
SEND = "Send my request"
ONE_PROCESS_FOR_ALL_SITES = [
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process",
]


def snippet(doc: str, heading: str) -> str:
    """The first ```html block under ``heading`` in docs/``doc``."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    section = text.split(f"\n{heading}\n", 1)[1]
    found = re.search(r"^```html\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert found, f"no html block under {heading!r} in {doc}"
    assert PLACEHOLDER in found.group(1)
    return found.group(1)


def parent_page(title: str, body: str) -> str:
    """A clinic's page around a snippet: what axe expects of any page (a language, a title,
    a main landmark with a heading)."""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n"
        "<p>Tell us how we can help.</p>\n"
        f"{body}\n<p>Opening hours: Monday to Friday, 8 to 6.</p>\n</main>\n</body>\n</html>\n"
    )


class ClinicSite(ThreadingHTTPServer):
    pages: dict[str, str]


class ClinicPages(BaseHTTPRequestHandler):
    server: ClinicSite

    def do_GET(self) -> None:
        page = self.server.pages.get(urlsplit(self.path).path)
        body = (page or "not found").encode()
        self.send_response(200 if page else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def clinic_site(port: int, pages: dict[str, str]) -> Iterator[str]:
    """The clinic's own website, on another origin than leads."""
    server = ClinicSite(("127.0.0.1", port), ClinicPages)
    server.pages = pages
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(frozen=True)
class Sites:
    leads: str
    clinic: str
    database: Path

    @property
    def form(self) -> str:
        return f"{self.leads}/f/dry-needling"

    async def lead(self, email: str) -> dict[str, Any]:
        def read() -> list[dict[str, Any]]:
            with sqlite3.connect(self.database) as conn:
                conn.row_factory = sqlite3.Row
                sql = "SELECT page_url, utm_source, utm_medium, spam FROM leads WHERE email = ?"
                return [dict(row) for row in conn.execute(sql, (email,))]

        rows = await asyncio.to_thread(read)
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    database = tmp_path_factory.mktemp("embeds") / "leads.db"
    port = free_port()
    clinic = f"http://localhost:{port}"
    env = {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_ALLOWED_ORIGINS": clinic,
        "LEADS_RATE_LIMIT": "off",  # one visitor address submits many times here
        "LEADS_MIN_FILL_SECONDS": "0",  # Playwright types faster than any person
        "LEADS_LOG_LEVEL": "warning",
    }
    with running_service(env) as leads:

        def docs(doc: str, heading: str) -> str:
            return snippet(doc, heading).replace(PLACEHOLDER, leads)

        pages = {
            "/iframe.html": parent_page(
                "Contact the clinic", docs("forms.md", "### Embedding in an iframe")
            ),
            "/form.html": parent_page(
                "Write to the clinic", docs("api.md", "### A plain HTML form")
            ),
            "/own.html": parent_page(
                "A form with its own values",
                f'<form method="post" action="{leads}/f/dry-needling"'
                ' data-leads-form="dry-needling">'
                '<input type="hidden" name="utm_source" value="newsletter">'
                '<input type="hidden" name="page_url" value="">'
                f'</form><script src="{leads}/embed.js" defer></script>',
            ),
            "/fetch.html": parent_page(
                "Ask the clinic", docs("api.md", "### fetch(), with errors beside each field")
            ),
        }
        with clinic_site(port, pages) as site:
            assert site == clinic
            yield Sites(leads, clinic, database)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Chromium with a page and its frames in one process, as Chrome on most phones runs a
    frame from another site: on a busy machine Playwright can lose track of a frame that
    has a process of its own (site isolation), and never list it."""
    async with chromium(*ONE_PROCESS_FOR_ALL_SITES) as launched:
        yield launched


@dataclass
class Visit:
    page: Page
    console: list[str]


@contextlib.asynccontextmanager
async def visit(
    browser: Browser, viewport: dict[str, int] = PHONE, *, bypass_csp: bool = False
) -> AsyncIterator[Visit]:
    context: BrowserContext = await browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        console: list[str] = []

        def record(message: ConsoleMessage) -> None:
            if message.type in ("error", "warning"):
                console.append(message.text)

        page.on("console", record)
        yield Visit(page, console)
    finally:
        await context.close()


async def fill_hosted_form(frame: Page | Frame, email: str) -> None:
    await frame.get_by_label("Your name").fill("Ada Lovelace")
    await frame.get_by_label("Email address").fill(email)
    await frame.get_by_role("checkbox").check()


async def send_hosted_form(frame: Page | Frame) -> None:
    async with frame.expect_navigation(wait_until="load"):
        await frame.get_by_role("button", name=SEND).click()


SUMMARY_FOCUSED = "document.activeElement && document.activeElement.id === 'error-summary'"


# (a) The hosted form, linked to from a campaign.


async def test_the_hosted_form_keeps_the_campaign_of_its_address(
    browser: Browser, sites: Sites
) -> None:
    async with visit(browser) as v:
        page = v.page
        await page.goto(f"{sites.form}?utm_source=flyer", wait_until="load")
        assert await page.locator("script").count() == 0  # on its own: no script at all
        await send_hosted_form(page)
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert await page.locator("[aria-invalid=true]").count() >= 3

        await fill_hosted_form(page, "hosted@example.com")
        await send_hosted_form(page)
        assert urlsplit(page.url).path == "/f/dry-needling/thanks"
    lead = await sites.lead("hosted@example.com")
    assert lead["page_url"] == f"{sites.form}?utm_source=flyer"
    assert lead["utm_source"] == "flyer"


async def test_axe_finds_nothing_on_the_hosted_form(browser: Browser, sites: Sites) -> None:
    async with visit(browser, bypass_csp=True) as v:  # the audit's script is let in here only
        page = v.page
        await page.goto(sites.form, wait_until="load")
        assert await axe_violations(page, frames=False) == []
        await send_hosted_form(page)
        assert await axe_violations(page, frames=False) == []


# (b) The iframe, on the clinic's page, from docs/forms.md.


async def iframe_of(page: Page) -> Frame:
    """The frame, once the form the snippet asked for (with its page_url) has loaded."""

    async def framed_form() -> Frame | None:
        # Each frame is asked where it is, rather than trusting Playwright's record of its
        # address, which lags behind when the snippet changes the src during the load.
        for frame in page.main_frame.child_frames:
            with contextlib.suppress(PlaywrightError, TimeoutError):
                address = await asyncio.wait_for(frame.evaluate("location.href"), 2)
                if "/f/dry-needling?" in address and "page_url=" in address:
                    return frame
        return None

    try:
        frame = await eventually(framed_form, within=20, what="the framed form")
    except AssertionError as missing:
        frames = [frame.url for frame in page.frames]
        source = await page.evaluate("document.getElementById('leads-form').src")
        raise AssertionError(f"{missing}; frames {frames}, the frame's src {source}") from None
    await frame.wait_for_load_state("load")
    return frame


# The frame is as tall as its page: no inner scrollbar, and the page ends where it does.
FITS = """() => {
    const frame = document.getElementById('leads-form').getBoundingClientRect();
    return frame.height;
}"""
INNER = """() => ({
    height: Math.ceil(document.documentElement.getBoundingClientRect().height),
    scrolls: document.documentElement.scrollHeight > document.documentElement.clientHeight + 1,
    button: document.querySelector('button') &&
        document.querySelector('button').getBoundingClientRect().bottom + scrollY,
})"""
TOP_IN_VIEW = """() => {
    const top = document.getElementById('leads-form').getBoundingClientRect().top;
    return top >= -1 && top < innerHeight / 4;
}"""


async def wait_until_fitted(page: Page, frame: Frame) -> dict[str, Any]:
    """Waits until the frame is as tall as its page, and returns the page's measures."""

    async def fitted() -> dict[str, Any] | None:
        inner: dict[str, Any] = await frame.evaluate(INNER)
        return inner if abs(await page.evaluate(FITS) - inner["height"]) <= 1 else None

    inner = await eventually(fitted, within=10, what="the frame fitting its page")
    assert not inner["scrolls"], inner
    return inner


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
async def test_the_iframe_fits_the_form_and_shows_its_top_after_each_send(
    browser: Browser, sites: Sites, viewport: dict[str, int]
) -> None:
    email = f"framed-{viewport['width']}@example.com"
    async with visit(browser, viewport) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/iframe.html?utm_source=flyer&utm_medium=print")
        frame = await iframe_of(page)  # the snippet told the form where it is

        form = await wait_until_fitted(page, frame)
        assert form["height"] >= 1200  # the whole form, not the 60rem that hid the button
        assert form["button"] <= form["height"]  # the button is inside what is shown

        # The visitor scrolls down to the button and sends the form empty.
        await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await send_hosted_form(frame)
        await frame.wait_for_selector("#error-summary")
        await page.wait_for_function(TOP_IN_VIEW)
        errors = await wait_until_fitted(page, frame)
        assert errors["height"] > form["height"]  # grew by the summary and the messages
        # autofocus is ignored in a frame from another origin; frame.js moves the focus.
        await frame.wait_for_function(SUMMARY_FOCUSED)

        await fill_hosted_form(frame, email)
        await page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        await send_hosted_form(frame)
        assert await frame.evaluate("location.pathname") == "/f/dry-needling/thanks"
        await page.wait_for_function(TOP_IN_VIEW)
        thanks = await wait_until_fitted(page, frame)
        assert thanks["height"] < form["height"]  # and shrank again to the thank-you text
        # frame.js ran under the pages' own policy: nothing was refused.
        assert not [m for m in v.console if "Content Security Policy" in m], v.console
    lead = await sites.lead(email)
    assert lead["page_url"] == f"{sites.clinic}/iframe.html"
    assert lead["utm_source"] == "flyer"
    assert lead["utm_medium"] == "print"
    assert lead["spam"] == 0


async def test_the_frame_script_only_takes_its_own_messages(browser: Browser, sites: Sites) -> None:
    """A message from another window, or of another shape, leaves the frame alone."""
    async with visit(browser) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/iframe.html")
        frame = await iframe_of(page)
        fitted = await wait_until_fitted(page, frame)
        await page.evaluate(
            """() => {
                window.postMessage({type: 'leads:height', height: 50}, '*');
                window.postMessage({type: 'other', height: 60}, '*');
            }"""
        )
        await page.evaluate("() => new Promise(done => setTimeout(done, 0))")  # after both
        assert abs(await page.evaluate(FITS) - fitted["height"]) <= 1
        # A message from the frame itself is taken, so the check above could fail.
        await frame.evaluate("() => parent.postMessage({type: 'leads:height', height: 50}, '*')")
        await page.wait_for_function(
            "document.getElementById('leads-form').getBoundingClientRect().height === 50"
        )


async def test_the_framed_form_is_served_with_its_script_and_the_framing_allowed(
    browser: Browser, sites: Sites
) -> None:
    async with visit(browser) as v:
        page = v.page
        async with page.expect_response(re.compile(r"/f/dry-needling\?")) as answer:
            await page.goto(f"{sites.clinic}/iframe.html")
        response = await answer.value
        policy = response.headers["content-security-policy"]
        assert f"frame-ancestors 'self' {sites.clinic}" in policy
        assert "script-src 'self';" in policy
        assert "unsafe-inline" not in policy
        frame = await iframe_of(page)
        scripts = await frame.eval_on_selector_all("script", "all => all.map(s => s.src)")
        assert scripts == [f"{sites.leads}/static/frame.js"]


async def test_axe_finds_nothing_on_the_iframe_page_or_in_the_frame(
    browser: Browser, sites: Sites
) -> None:
    async with visit(browser, bypass_csp=True) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/iframe.html")
        frame = await iframe_of(page)
        await wait_until_fitted(page, frame)
        assert await axe_violations(page, frames=False) == []
        assert await axe_violations(frame, frames=False) == []
        await send_hosted_form(frame)
        await frame.wait_for_selector("#error-summary")
        assert await axe_violations(frame, frames=False) == []


# (c) The clinic's own HTML form with embed.js, from docs/api.md.


async def test_a_plain_form_with_embed_js_sends_its_page_and_campaign(
    browser: Browser, sites: Sites
) -> None:
    async with visit(browser) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/form.html?utm_source=flyer&fbclid=private")
        form = page.locator("form[data-leads-form]")
        await page.wait_for_function("document.querySelector('input[name=form_token]')?.value")
        hidden = await form.evaluate(
            "f => Object.fromEntries([...f.querySelectorAll('input[type=hidden]')]"
            ".map(i => [i.name, i.value]))"
        )
        assert hidden.pop("form_token")
        assert hidden == {"page_url": f"{sites.clinic}/form.html", "utm_source": "flyer"}
        assert await axe_violations(page, frames=False) == []

        # Name and consent given, no way to reach them: the hosted form says so.
        await page.get_by_label("Your name").fill("Mary Somerville")
        await page.get_by_role("checkbox").check()
        async with page.expect_navigation(wait_until="load"):
            await page.get_by_role("button", name="Send").click()
        assert page.url == sites.form
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert (
            "an email address or a phone number"
            in await page.locator("#error-summary").inner_text()
        )

        await page.get_by_label("Email address").fill("plain@example.com")
        await send_hosted_form(page)
        assert urlsplit(page.url).path == "/f/dry-needling/thanks"
    lead = await sites.lead("plain@example.com")
    assert lead["page_url"] == f"{sites.clinic}/form.html"
    assert lead["utm_source"] == "flyer"
    assert lead["spam"] == 0


async def test_embed_js_keeps_a_value_the_page_set(browser: Browser, sites: Sites) -> None:
    async with visit(browser) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/own.html?utm_source=flyer&utm_term=knee")
        await page.wait_for_function("document.querySelector('input[name=form_token]')?.value")
        hidden = await page.eval_on_selector_all(
            "input[type=hidden]", "all => all.map(i => [i.name, i.value])"
        )
        assert [h for h in hidden if h[0] != "form_token"] == [
            ["utm_source", "newsletter"],  # set by the page: kept
            ["page_url", f"{sites.clinic}/own.html"],  # there but empty: filled
            ["utm_term", "knee"],  # missing: added
        ]


# (d) The fetch() example, from docs/api.md.


async def test_the_fetch_example_shows_errors_then_stores_page_and_campaign(
    browser: Browser, sites: Sites
) -> None:
    async with visit(browser) as v:
        page = v.page
        await page.goto(f"{sites.clinic}/fetch.html?utm_source=flyer")
        assert await axe_violations(page, frames=False) == []

        await page.get_by_role("button", name="Send").click()
        await page.wait_for_selector("#name-error:not([hidden])")
        assert await page.get_by_label("Your name").get_attribute("aria-invalid") == "true"
        assert "check the fields" in await page.locator("#form-status").inner_text()
        assert await axe_violations(page, frames=False) == []

        await page.get_by_label("Your name").fill("Emmy Noether")
        await page.get_by_label("Email").fill("fetched@example.com")
        await page.get_by_role("checkbox").check()
        await page.get_by_role("button", name="Send").click()
        await page.wait_for_function(
            "document.getElementById('form-status').textContent.startsWith('Thank you')"
        )
    lead = await sites.lead("fetched@example.com")
    assert lead["page_url"] == f"{sites.clinic}/fetch.html"
    assert lead["utm_source"] == "flyer"
    assert lead["spam"] == 0
