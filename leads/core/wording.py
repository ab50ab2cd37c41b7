"""A form's words in each language: ``language`` and ``[forms.<slug>.translations.<lang>]``
in LEADS_FORMS_FILE, and the form as a visitor of one language is shown it.

The form's own keys (title, intro, interests, interest_label, consent, autoreply) are in
its ``language`` (the clinic's, LEADS_LANGUAGE, when not given). A translation gives the
same keys in another shipped language; a key it leaves out is shown as the form's own,
except for the words leads itself ships (the built-in form's, the default consent and
interest label), which come from the catalogs. The consent version of a translation is
its ``consent_version`` if given, else a hash of the wording shown, like the form's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from leads.core.vocabulary import Language
from leads.errors import ConfigurationError

if TYPE_CHECKING:
    from leads.core.forms import Form

# What a translation may give; each is the form's key of the same name.
TRANSLATED_KEYS = ("title", "intro", "interests", "interest_label", "consent", "autoreply")


def consent_hash(wording: str) -> str:
    """The version of a consent wording that names none: a short hash of the words."""
    return f"sha256:{hashlib.sha256(wording.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class Wording:
    """A form's words in one language; ``None``: as the form's own."""

    title: str | None = None
    intro: str | None = None
    interests: tuple[str, ...] | None = None
    interest_label: str | None = None
    consent: str | None = None
    consent_version: str | None = None
    autoreply: str | None = None


def language_of(value: object, where: str) -> Language:
    """A shipped language's code, or the error naming where it was written."""
    try:
        return Language(value if isinstance(value, str) else "")
    except ValueError:
        shipped = ", ".join(language.value for language in Language)
        raise ConfigurationError(f"{where}: language is one of {shipped}") from None


def translations_of(
    spec: dict[str, Any], where: str
) -> tuple[Language | None, tuple[tuple[Language, Wording], ...]]:
    """A form's ``language`` and ``translations`` as its forms-file table gives them."""
    language = language_of(spec["language"], where) if "language" in spec else None
    tables = spec.get("translations", {})
    if not isinstance(tables, dict):
        raise ConfigurationError(f"{where}: translations must be a table of languages")
    wordings = []
    for code, table in tables.items():
        here = f"{where}: translations.{code}"
        wordings.append((language_of(code, here), _wording(table, here)))
    return language, tuple(wordings)


def _wording(table: object, where: str) -> Wording:
    if not isinstance(table, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = set(table) - {*TRANSLATED_KEYS, "consent_version"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    for key, value in table.items():
        if key != "interests" and not (isinstance(value, str) and value.strip()):
            raise ConfigurationError(f"{where}: {key} must be text")
    interests = table.get("interests")
    if interests is not None and not (
        isinstance(interests, list)
        and all(isinstance(i, str) and i.strip() and len(i) <= 200 for i in interests)
    ):
        raise ConfigurationError(f"{where}: interests must be a list of short texts")
    label = " ".join(table.get("interest_label", "").split())
    if len(label) > 200:
        raise ConfigurationError(f"{where}: interest_label is at most 200 characters")
    if "consent_version" in table and "consent" not in table:
        raise ConfigurationError(f"{where}: consent_version names a consent given here")
    if len(table.get("consent_version", "")) > 64:
        raise ConfigurationError(f"{where}: consent_version is at most 64 characters")
    return Wording(
        title=table.get("title"),
        intro=table.get("intro"),
        interests=tuple(i.strip() for i in interests) if interests is not None else None,
        interest_label=label or None,
        consent=table.get("consent"),
        consent_version=table.get("consent_version"),
        autoreply=table.get("autoreply"),
    )


def worded(form: Form, language: Language, gettext: Callable[[str], str]) -> Form:
    """``form`` as a visitor reading ``language`` is shown it: its translation's words, else
    its own, each through ``gettext`` (that language's catalog), which translates the words
    leads ships and leaves a clinic's own as they are. The result's ``language`` is the one
    shown and its ``consent_version`` that of the consent shown."""
    own = dict(form.translations).get(language, Wording())

    def shown(given: str | None, base: str) -> str:
        if given is not None:
            return given
        return gettext(base) if base else base

    consent = shown(own.consent, form.consent)
    if own.consent is not None:
        version = own.consent_version or consent_hash(consent)
    else:
        version = form.consent_version if consent == form.consent else consent_hash(consent)
    autoreply = own.autoreply if own.autoreply is not None else form.autoreply
    interests = own.interests if own.interests is not None else form.interests
    return replace(
        form,
        title=shown(own.title, form.title),
        intro=shown(own.intro, form.intro),
        interests=tuple(gettext(i) if own.interests is None else i for i in interests),
        interest_label=shown(own.interest_label, form.interest_label),
        consent=consent,
        consent_version=version,
        autoreply=autoreply,
        language=language,
        translations=(),
    )
