"""Words for visitors, written in English and translated where they are shown.

Code that words something for a visitor marks the English sentence with :func:`N_` (the
catalogs' extraction finds it; nothing is translated there) and keeps any figures apart as
parameters (``%(name)s``). The door that shows it, knowing the visitor's language, words
it with a :class:`Words` (``leads.i18n.catalogs.words_for``); :data:`ENGLISH` is the words
of code that shows English only (the staff side, logs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


def N_(text: str) -> str:
    """Mark ``text`` for the catalogs; it is translated later, where it is shown."""
    return text


class Words(Protocol):
    """One language's words: a catalog's translation of an English sentence, and numbers
    written as that language writes them."""

    @property
    def language(self) -> str: ...

    def gettext(self, message: str) -> str: ...

    def number(self, value: int) -> str: ...


class _English:
    language = "en"

    def gettext(self, message: str) -> str:
        return message

    def number(self, value: int) -> str:
        return str(value)


ENGLISH: Words = _English()


def worded(words: Words, text: str, params: Mapping[str, object] | None = None) -> str:
    """``text`` in ``words``' language, its ``%(name)s`` filled in (numbers as the language
    writes them)."""
    translated = words.gettext(text)
    if not params:
        return translated
    return translated % {
        key: words.number(value) if isinstance(value, int) else value
        for key, value in params.items()
    }
