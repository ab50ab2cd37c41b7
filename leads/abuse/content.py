"""Content rules: what a submission says that marks it as spam.

``spam_reasons(name=..., message=..., blocked_terms=..., max_links=...)`` returns a list of
:class:`ContentReason`, in their order, each at most once (empty = nothing found);
:class:`ContentRules` is that check as a spam rule (leads/abuse/rules.py).

Text is compared after NFKC normalisation and case folding, with invisible format
characters (zero-width spaces and joiners, soft hyphens) removed, so fullwidth or
compatibility letters and ``v\u200biagra`` do not slip through.

A link is ``http(s)://...``, ``www....``, or a bare ``domain.tld/...`` (a slash right after
the top-level domain). A bare ``clinic.example`` without a slash is not counted, so that
ordinary writing ("I saw Dr. Smith at 3.30pm", "J.Smith", "e.g.") never is.
Blocked terms match whole words only: ``"cialis"`` catches "Buy CIALIS now" but not
"specialist"; a term of several words matches across any run of spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import ClassVar

from leads.abuse.rules import Reason, RuleSetup, Screened, Visit

_LINK = re.compile(
    r"""(?:https?://|www\.)\S+                    # scheme or www. and everything after
      | (?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}/\S*  # bare domain.tld/
    """,
    re.VERBOSE,
)
# A whole name that is a domain, e.g. "cheap-pills.shop": only with a top-level domain that
# spam uses, because "J.Smith" and "Mary.Ann" are domain-shaped too.
_DOMAIN_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+([a-z]{2,63})\.?")
_SPAM_TLDS = frozenset(
    {
        "com", "net", "org", "info", "biz", "io", "co", "me", "us", "uk", "ru", "cn", "xyz",
        "top", "site", "online", "shop", "store", "click", "link", "live", "club", "vip", "win",
        "bid", "loan", "work", "icu", "buzz", "fun", "space", "website", "tech", "app", "pro",
        "best",
    }
)  # fmt: skip


class ContentReason(Reason):
    TOO_MANY_LINKS = "too_many_links", "The message has more links than `LEADS_MAX_LINKS`."
    BLOCKED_TERM = (
        "blocked_term",
        "The name or message contains one of `LEADS_BLOCKED_TERMS`.",
    )
    NAME_IS_URL = "name_is_url", "The name is, or contains, a web address."


def spam_reasons(
    *, name: str, message: str | None, blocked_terms: Sequence[str], max_links: int
) -> list[ContentReason]:
    """Reasons to flag this submission as spam, or an empty list."""
    name_text = _normalise(name)
    message_text = _normalise(message or "")
    reasons: list[ContentReason] = []
    if len(_LINK.findall(message_text)) > max_links:
        reasons.append(ContentReason.TOO_MANY_LINKS)
    if _contains_term(f"{name_text}\n{message_text}", blocked_terms):
        reasons.append(ContentReason.BLOCKED_TERM)
    if _is_url(name_text):
        reasons.append(ContentReason.NAME_IS_URL)
    return reasons


class ContentRules:
    """The spam rule: what the name and message say (``LEADS_BLOCKED_TERMS``,
    ``LEADS_MAX_LINKS``)."""

    name: ClassVar[str] = "content"
    reasons: ClassVar[type[Reason]] = ContentReason

    def __init__(self, *, blocked_terms: Sequence[str], max_links: int) -> None:
        self.blocked_terms = tuple(blocked_terms)
        self.max_links = max_links

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> ContentRules:
        settings = setup.settings
        return cls(blocked_terms=settings.blocked_terms, max_links=settings.max_links)

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        return spam_reasons(
            name=submission.name,
            message=submission.message,
            blocked_terms=self.blocked_terms,
            max_links=self.max_links,
        )


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return text.casefold()


def _contains_term(text: str, terms: Sequence[str]) -> bool:
    for term in terms:
        words = _normalise(term).split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
        if re.search(pattern, text):
            return True
    return False


def _is_url(name: str) -> bool:
    if _LINK.search(name):
        return True
    whole = _DOMAIN_NAME.fullmatch(name.strip())
    return whole is not None and whole.group(1) in _SPAM_TLDS
