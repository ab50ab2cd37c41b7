"""The gettext catalogs of leads/locale/<lang>/LC_MESSAGES/leads.po, one per shipped
language but English (the language the words are written in: its catalog would be empty).

A catalog is read the first time its language is needed, from the compiled ``leads.mo``
when one is there and no older than its ``.po``, else compiled from the ``.po`` in memory
with Babel (a few milliseconds for a catalog this size). A wheel carries each ``.mo``
(compiled by hatch_build.py); a checkout and an editable install work without that step,
and a ``.mo`` left behind by an edit of the ``.po`` is never read. Each language's words
are kept for the life of the process: they never change while it runs.
"""

from __future__ import annotations

import functools
import gettext
import io
from dataclasses import dataclass
from pathlib import Path

from leads.core.vocabulary import Language

LOCALE_DIR = Path(__file__).parent.parent / "locale"
DOMAIN = "leads"
# Four-digit counts are written without a separator in all three languages' style guides
# ("2000 characters", "2000 caracteres", "2000 Zeichen"); longer ones are grouped.
GROUPED_FROM = 10_000


def catalog_path(language: Language, suffix: str = ".po") -> Path:
    return LOCALE_DIR / language.value / "LC_MESSAGES" / f"{DOMAIN}{suffix}"


@dataclass(frozen=True, slots=True)
class LanguageWords:
    """One language's words (:class:`leads.translatable.Words`)."""

    language: Language
    translations: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        # "" would be the catalog's header.
        return self.translations.gettext(message) if message else message

    def number(self, value: int) -> str:
        if self.language is Language.EN and value < GROUPED_FROM:
            return str(value)
        from babel.numbers import format_decimal

        return format_decimal(
            value, locale=self.language.value, group_separator=value >= GROUPED_FROM
        )


@functools.cache
def words_for(language: Language) -> LanguageWords:
    """``language``'s words, its catalog read (or compiled) once per process."""
    if language is Language.EN:
        return LanguageWords(language, gettext.NullTranslations())
    return LanguageWords(language, _translations(language))


def _translations(language: Language) -> gettext.GNUTranslations:
    po, mo = catalog_path(language), catalog_path(language, ".mo")
    if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
        with mo.open("rb") as compiled:
            return gettext.GNUTranslations(compiled)
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        catalog = read_po(source, locale=language.value, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries left out, as pybabel compile does
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)
