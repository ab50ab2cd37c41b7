"""Content rules: links, blocked terms and names that are web addresses."""

from __future__ import annotations

import pytest

from leads.abuse.content import spam_reasons
from leads.settings import Settings


def fullwidth(text: str) -> str:
    """The same letters from the Unicode fullwidth block (U+FF21...), as spammers use."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalpha() else c for c in text)


def reasons(
    message: str | None = None,
    *,
    name: str = "Ada Lovelace",
    blocked: tuple[str, ...] = (),
    max_links: int = 3,
) -> list[str]:
    return spam_reasons(name=name, message=message, blocked_terms=blocked, max_links=max_links)


@pytest.mark.parametrize(
    "message",
    [
        None,
        "",
        "I saw Dr. Smith at 3.30pm and would like a follow-up.",
        "Mon.-Fri. is best, e.g. after 5p.m. i.e. not weekends. Ref. no. 12.5/30",
        "My email is jo.smith@example.com and my site is clinic.example (no slash).",
        "Could you book me in for 10.15? Thanks, J.R. Smith",
        "See https://clinic.example/booking please",  # one link is fine
        "a/b testing, and/or 1/2 dose, 3.5/10 pain",
    ],
)
def test_ordinary_messages_are_not_flagged(message: str | None) -> None:
    assert reasons(message) == []


@pytest.mark.parametrize(
    "message",
    [
        "http://a.example https://b.example www.c.example d-shop.xyz/buy",
        "Cheap! bit.ly/x1 bit.ly/x2 tinyurl.com/y3 example.ru/z",
        f"{fullwidth('https')}://a.example {fullwidth('http')}://b.example www.c.ex x.ex/",
        "[url=http://a.example]a[/url] <a href='https://b.example'>b</a> www.c.example www.d.ex",
    ],
)
def test_more_links_than_allowed(message: str) -> None:
    assert reasons(message) == ["too_many_links"]


def test_the_limit_is_more_than_max_links_and_a_url_counts_once() -> None:
    three = "https://www.a.example/x https://www.b.example/y http://c.example/z"
    assert reasons(three, max_links=3) == []
    assert reasons(three, max_links=2) == ["too_many_links"]
    assert reasons("https://www.a.example/", max_links=0) == ["too_many_links"]


@pytest.mark.parametrize(
    "message",
    [
        "Buy CIALIS now",
        f"buy {fullwidth('cialis')} now",
        "buy ci\u200balis now",  # a zero-width space inside
        "best price: Cialis!",
        "we offer SEO   services for clinics",  # a phrase, across several spaces
    ],
)
def test_blocked_terms(message: str) -> None:
    assert reasons(message, blocked=("cialis", "seo services")) == ["blocked_term"]


def test_blocked_terms_match_whole_words_only() -> None:
    blocked = ("cialis", "seo", "")
    assert reasons("I need a specialist, not a video of seoul", blocked=blocked) == []
    assert reasons("Hello", name="SEO Expert", blocked=blocked) == ["blocked_term"]


def test_blocked_term_written_in_compatibility_form() -> None:
    assert reasons(f"{fullwidth('Casino')} bonus", blocked=(fullwidth("casino"),)) == [
        "blocked_term"
    ]
    assert reasons("casino bonus", blocked=("CASINO",)) == ["blocked_term"]


@pytest.mark.parametrize(
    "name",
    [
        "https://cheap-pills.example",
        "www.cheap-pills.example",
        "cheap-pills.shop",
        "Visit best-seo.com/offer",
        f"{fullwidth('www')}.spam.example",
    ],
)
def test_a_name_that_is_a_web_address(name: str) -> None:
    assert reasons("Hello", name=name) == ["name_is_url"]


@pytest.mark.parametrize(
    "name", ["J.Smith", "Mary.Ann O'Neil", "Dr. A. Jones", "Jean-Luc Picard", "李小龍", "Ng"]
)
def test_ordinary_names(name: str) -> None:
    assert reasons("Hello", name=name) == []


def test_every_reason_at_once_in_a_fixed_order() -> None:
    message = "casino https://a.example https://b.example"
    assert reasons(message, name="www.x.example", blocked=("casino",), max_links=1) == [
        "too_many_links",
        "blocked_term",
        "name_is_url",
    ]


def test_the_blocked_terms_setting() -> None:
    settings = Settings(_env_file=None, blocked_terms="casino, seo services ,")  # type: ignore[call-arg]
    assert settings.blocked_terms == ("casino", "seo services")
    assert settings.max_links == 3
    assert spam_reasons(
        name="A", message="SEO  Services!", blocked_terms=settings.blocked_terms, max_links=3
    ) == ["blocked_term"]
