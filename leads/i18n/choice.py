"""Which language a request is answered in.

The form's ``language`` (LEADS_FORMS_FILE), else the clinic's (LEADS_LANGUAGE). With
LEADS_NEGOTIATE_LANGUAGE the browser's ``Accept-Language`` comes first: the shipped
language it ranks highest (q-values honoured, ``es-MX`` read as ``es``, ``q=0`` refused);
one that names none of them gets the form's, then the clinic's. A negotiated answer
carries ``Vary: Accept-Language``. The staff side is always English.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from leads.core.forms import Form
from leads.core.vocabulary import Language
from leads.core.wording import worded
from leads.i18n.catalogs import LanguageWords, words_for
from leads.settings import Settings

_RANGE = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")
# An Accept-Language longer than this is not a browser's; only its start is read.
MAX_HEADER = 500


def accepted_languages(header: str | None) -> tuple[Language, ...]:
    """The shipped languages ``header`` asks for, best first."""
    ranked: list[tuple[float, int, Language]] = []
    for position, item in enumerate((header or "")[:MAX_HEADER].split(",")):
        match = _RANGE.match(item)
        if match is None:
            continue  # "*", or not a language range
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        try:
            language = Language(match.group(1).lower())
        except ValueError:
            continue
        if quality > 0:
            ranked.append((-quality, position, language))
    return tuple(dict.fromkeys(language for *_, language in sorted(ranked)))


@functools.lru_cache(maxsize=1024)
def shown_in(form: Form, language: Language) -> Form:
    """``form`` as ``language``'s visitors see it. Kept: forms are frozen and loaded once,
    and every submission and page asks again (tens of microseconds each, otherwise)."""
    return worded(form, language, words_for(language).gettext)


def is_staff_path(path: str) -> bool:
    return path.startswith(("/staff", "/api/staff"))


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    """What one request's language is chosen from."""

    clinic: Language
    accepted: tuple[Language, ...] = ()  # from Accept-Language, when negotiating
    negotiated: bool = False  # the answer depends on Accept-Language

    @classmethod
    def of(cls, request: HTTPConnection, settings: Settings) -> LanguageChoice:
        if is_staff_path(request.url.path):
            return cls(Language.EN)
        if not settings.negotiate_language:
            return cls(settings.language)
        header = request.headers.get("accept-language")
        return cls(settings.language, accepted_languages(header), negotiated=True)

    def language(self, form: Form | None = None) -> Language:
        if self.accepted:
            return self.accepted[0]
        if form is not None and form.language is not None:
            return form.language
        return self.clinic

    def words(self, form: Form | None = None) -> LanguageWords:
        return words_for(self.language(form))

    def shown(self, form: Form) -> Form:
        """``form`` in the language this request is answered in."""
        return shown_in(form, self.language(form))

    def vary(self, *others: str) -> str:
        """The ``Vary`` header of an answer in this language, with ``others``."""
        return ", ".join([*others, "Accept-Language"] if self.negotiated else others)
