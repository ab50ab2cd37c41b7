"""Each shipped language in a real Chromium against `leads serve`, the browser's own locale
choosing it (LEADS_NEGOTIATE_LANGUAGE): the form, its errors beside their fields and the
thank-you page, each with no axe-core violation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Browser, Page

from tests.browsers import PHONE, axe_violations
from tests.conftest import SECRET
from tests.servers import running_service

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SUMMARY_FOCUSED = "document.activeElement && document.activeElement.id === 'error-summary'"


@dataclass(frozen=True)
class Language:
    locale: str  # the browser's, which it sends as Accept-Language
    lang: str
    title: str
    send: str
    name_error: str
    thanks: str


LANGUAGES = [
    Language(
        "en-US",
        "en",
        "Learn more about dry needling",
        "Send my request",
        "Please tell us your name.",
        "Thank you, we have your request",
    ),
    Language(
        "es-MX",
        "es",
        "Más información sobre la punción seca",
        "Enviar mi solicitud",
        "Díganos su nombre.",
        "Gracias, recibimos su solicitud",
    ),
    Language(
        "de-DE",
        "de",
        "Mehr über Dry Needling erfahren",
        "Anfrage senden",
        "Bitte nennen Sie uns Ihren Namen.",
        "Vielen Dank, Ihre Anfrage ist angekommen",
    ),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database = tmp_path_factory.mktemp("languages") / "leads.db"
    env = {
        "LEADS_DATABASE_URL": f"sqlite:///{database}",
        "LEADS_SECRET_KEY": SECRET,
        "LEADS_RATE_LIMIT": "off",
        "LEADS_MIN_FILL_SECONDS": "0",
        "LEADS_LOG_LEVEL": "warning",
        "LEADS_NEGOTIATE_LANGUAGE": "true",
        "LEADS_CLINIC_PHONE": "(202) 555-0123",
        "LEADS_CLINIC_URL": "https://clinic.example/",
    }
    with running_service(env) as base:
        yield base


async def send(page: Page, label: str) -> None:
    async with page.expect_navigation(wait_until="load"):
        await page.get_by_role("button", name=label).click()


@pytest.mark.parametrize("language", LANGUAGES, ids=[language.lang for language in LANGUAGES])
async def test_each_language_is_shown_whole_and_accessible(
    browser: Browser, service: str, language: Language
) -> None:
    context = await browser.new_context(viewport=PHONE, locale=language.locale, bypass_csp=True)
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"{service}/f/dry-needling", wait_until="load")
        assert await page.get_attribute("html", "lang") == language.lang
        assert await page.title() == language.title
        assert await axe_violations(page) == []

        await send(page, language.send)
        await page.wait_for_function(SUMMARY_FOCUSED)
        assert await page.locator("[aria-invalid=true]").count() >= 3
        # Beside its field, and what the field is described by.
        name = page.locator("#name")
        assert await name.get_attribute("aria-describedby") == "name-error"
        shown = await page.locator("#name-error").text_content() or ""
        assert " ".join(shown.split()) == language_error(language)
        assert await axe_violations(page) == []

        await page.locator("#name").fill("Grace Hopper")
        await page.locator("#email").fill(f"grace.{language.lang}@example.com")
        await page.locator("#consent").check()
        await send(page, language.send)
        assert page.url.endswith("/f/dry-needling/thanks")
        assert await page.get_attribute("html", "lang") == language.lang
        assert await page.get_by_role("heading", level=1).inner_text() == language.thanks
        assert await axe_violations(page) == []
    finally:
        await context.close()


def language_error(language: Language) -> str:
    """The error as the page shows it: "Error:" for screen readers, then the message."""
    prefix = {"en": "Error:", "es": "Error:", "de": "Fehler:"}[language.lang]
    return f"{prefix} {language.name_error}"
