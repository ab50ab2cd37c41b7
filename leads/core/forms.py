"""Form definitions: the built-in dry-needling form plus any from ``LEADS_FORMS_FILE``.

A forms file is TOML (or JSON with the same shape)::

    [forms.dry-needling]
    title = "Learn more about dry needling"
    intro = "Tell us a little about you and we will get back to you."
    interests = ["Neck or shoulder pain", "Lower back pain"]
    consent = "I agree that the clinic may contact me about my enquiry."
    thank_you_url = "https://clinic.example/thanks"
    interest_label = "Where does it hurt?"
    clinic_name = "Northside Physio"       # each of the clinic_* keys overrides its
    clinic_phone = "+1 202 555 0123"       # LEADS_CLINIC_* setting for this form only
    clinic_url = "https://northside.example"
    inbox = ["northside@clinic.example"]   # inbox, sms_to, webhook_urls: this form's own
                                           # recipients (leads.core.routing)

    language = "en"                        # the language of the words above
    [forms.dry-needling.translations.es]   # the same keys in another language
    title = "Más información sobre la punción seca"

A form in the file replaces a built-in form of the same slug. Languages and translations
are read by :mod:`leads.core.wording`. The consent version stored
with each lead is ``consent_version`` if given, else a short hash of the wording, so any
change of wording is recorded as a new version without anyone having to remember to bump it.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leads.core.clinic import ClinicIdentity, Phone, clinic_name, clinic_phone, clinic_url
from leads.core.routing import NO_ROUTING, ROUTING_KEYS, FormRouting, routing_from
from leads.core.vocabulary import Language
from leads.core.wording import Wording, consent_hash, translations_of
from leads.errors import ConfigurationError, FormNotFound
from leads.translatable import N_

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")

DEFAULT_CONSENT = N_(
    "I agree that the clinic may store these details and contact me about my enquiry. "
    "We never share them with anyone else."
)
DEFAULT_INTEREST_LABEL = N_("What would you like help with?")


@dataclass(frozen=True, slots=True)
class Form:
    slug: str
    title: str
    intro: str = ""
    interests: tuple[str, ...] = ()
    consent: str = DEFAULT_CONSENT
    consent_version: str = ""
    thank_you_url: str | None = None
    autoreply: str | None = None
    interest_label: str = DEFAULT_INTEREST_LABEL
    # The clinic as this form presents it; None: as the LEADS_CLINIC_* settings say.
    clinic_name: str | None = None
    clinic_phone: Phone | None = None
    clinic_url: str | None = None
    # Where its leads' notifications go, over the global settings key by key.
    routing: FormRouting = NO_ROUTING
    # The language of the words above (None: LEADS_LANGUAGE's), and the words in others.
    language: Language | None = None
    translations: tuple[tuple[Language, Wording], ...] = ()

    def identity(self, default: ClinicIdentity) -> ClinicIdentity:
        """The clinic this form speaks for: ``default`` (the settings') with this form's
        own values over it."""
        return default.overlaid(name=self.clinic_name, phone=self.clinic_phone, url=self.clinic_url)

    def __post_init__(self) -> None:
        if not self.consent_version:
            object.__setattr__(self, "consent_version", consent_hash(self.consent))


BUILT_IN = (
    Form(
        slug="dry-needling",
        title=N_("Learn more about dry needling"),
        intro=N_(
            "Curious whether dry needling could help you? Leave your details and one of our "
            "physical therapists will get back to you, usually within one working day."
        ),
        interests=(
            N_("Neck or shoulder pain"),
            N_("Lower back pain"),
            N_("Headaches"),
            N_("Sports injury"),
            N_("Something else"),
        ),
    ),
)


@dataclass(frozen=True)
class FormCatalog:
    forms: dict[str, Form] = field(default_factory=dict)
    default_slug: str = "dry-needling"

    def get(self, slug: str) -> Form:
        try:
            return self.forms[slug]
        except KeyError:
            raise FormNotFound() from None


def load_forms(path: Path | None, *, region: str = "US") -> FormCatalog:
    """The built-in forms, overlaid with those defined in ``path``. A form's clinic phone
    written without +country is read in ``region`` (LEADS_DEFAULT_REGION)."""
    forms = {form.slug: form for form in BUILT_IN}
    if path is not None:
        for form in _read_forms_file(path, region):
            forms[form.slug] = form
    return FormCatalog(forms)


def _read_forms_file(path: Path, region: str) -> list[Form]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as exc:
        raise ConfigurationError(f"LEADS_FORMS_FILE: cannot read {path}: {exc.strerror}") from exc
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"LEADS_FORMS_FILE: {path} is not valid: {exc}") from exc
    entries = data.get("forms") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise ConfigurationError(f"LEADS_FORMS_FILE: {path} needs a [forms.<slug>] table")
    return [_form_from(slug, spec, path, region) for slug, spec in entries.items()]


_TEXT_KEYS = (
    "title",
    "intro",
    "consent",
    "consent_version",
    "thank_you_url",
    "autoreply",
    "interest_label",
    "clinic_name",
    "clinic_phone",
    "clinic_url",
)


def _form_from(slug: str, spec: Any, path: Path, region: str) -> Form:
    where = f"LEADS_FORMS_FILE: {path}: form {slug!r}"
    if not SLUG.match(slug):
        raise ConfigurationError(f"{where}: slugs are lowercase letters, digits and dashes")
    if not isinstance(spec, dict):
        raise ConfigurationError(f"{where} must be a table")
    unknown = set(spec) - {*_TEXT_KEYS, *ROUTING_KEYS, "interests", "language", "translations"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown keys {sorted(unknown)}")
    for key in _TEXT_KEYS:
        if key in spec and not isinstance(spec[key], str):
            raise ConfigurationError(f"{where}: {key} must be text")
    if not spec.get("title"):
        raise ConfigurationError(f"{where}: a title is required")
    interests = spec.get("interests", [])
    if not isinstance(interests, list) or not all(
        isinstance(i, str) and i.strip() and len(i) <= 200 for i in interests
    ):
        raise ConfigurationError(f"{where}: interests must be a list of short texts")
    if len(spec.get("consent_version", "")) > 64:
        raise ConfigurationError(f"{where}: consent_version is at most 64 characters")
    url = spec.get("thank_you_url")
    if url and not url.startswith(("https://", "http://", "/")):
        raise ConfigurationError(f"{where}: thank_you_url must be an http(s) URL or a path")
    label = " ".join(spec.get("interest_label", "").split())
    if len(label) > 200:
        raise ConfigurationError(f"{where}: interest_label is at most 200 characters")
    name, phone, site = _clinic_of(spec, where, region)
    try:
        routing = routing_from(spec)
    except ValueError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None
    language, translations = translations_of(spec, where)
    return Form(
        slug=slug,
        title=spec["title"],
        intro=spec.get("intro", ""),
        interests=tuple(i.strip() for i in interests),
        consent=spec.get("consent") or DEFAULT_CONSENT,
        consent_version=spec.get("consent_version", ""),
        thank_you_url=url or None,
        autoreply=spec.get("autoreply"),
        interest_label=label or DEFAULT_INTEREST_LABEL,
        clinic_name=name,
        clinic_phone=phone,
        clinic_url=site,
        routing=routing,
        language=language,
        translations=translations,
    )


def _clinic_of(
    spec: dict[str, Any], where: str, region: str
) -> tuple[str | None, Phone | None, str | None]:
    """A form's own clinic name, phone and site, each checked as its LEADS_CLINIC_* is."""
    try:
        name = clinic_name(spec["clinic_name"]) if "clinic_name" in spec else None
    except ValueError as exc:
        raise ConfigurationError(f"{where}: clinic_name {exc}") from None
    try:
        phone = clinic_phone(spec["clinic_phone"], region) if "clinic_phone" in spec else None
    except ValueError as exc:
        raise ConfigurationError(f"{where}: clinic_phone {exc}") from None
    try:
        site = clinic_url(spec["clinic_url"]) if "clinic_url" in spec else None
    except ValueError as exc:
        raise ConfigurationError(f"{where}: clinic_url {exc}") from None
    return name, phone, site
