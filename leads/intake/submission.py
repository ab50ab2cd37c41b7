"""Parse one submission (JSON object or form fields) into a typed :class:`Submission`.

This is the edge: everything after it sees clean, normalised values only. All problems are
collected, so a visitor sees every field to fix at once, not one per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from leads.core.forms import Form, FormCatalog
from leads.core.vocabulary import ATTRIBUTION
from leads.errors import FieldError, InvalidSubmission
from leads.i18n.choice import LanguageChoice
from leads.intake.fields import (
    MAX_PHONE_INPUT,
    Invalid,
    clean_email,
    clean_phone,
    clean_text,
    has_visible_character,
    is_checked,
)
from leads.translatable import N_

ContactMethod = Literal["email", "phone", "text"]
CONTACT_METHODS: tuple[ContactMethod, ...] = ("email", "phone", "text")
# The captcha answer, under our name (JSON) or as each provider's widget posts it (forms).
CAPTCHA_FIELDS = (
    "captcha_token",
    "cf-turnstile-response",
    "h-captcha-response",
    "g-recaptcha-response",
)
FIELDS = frozenset(
    {
        "name",
        "email",
        "phone",
        "preferred_contact",
        "message",
        "interest",
        "form",
        "consent",
        "website",
        "form_token",
        *CAPTCHA_FIELDS,
        *ATTRIBUTION,
    }
)
MAX_NAME = 100
MAX_MESSAGE = 2000
MAX_ATTRIBUTION = 500
# What a preferred way of contact needs, asked for beside the field it needs.
NEEDED_FOR: dict[ContactMethod, str] = {
    "email": N_("Please add this so we can email you."),
    "phone": N_("Please add this so we can call you."),
    "text": N_("Please add this so we can text you."),
}


@dataclass(frozen=True, slots=True)
class Submission:
    form: Form
    name: str
    email: str | None
    phone: str | None
    preferred_contact: ContactMethod | None
    message: str | None
    interest: str | None
    attribution: dict[str, str | None]
    honeypot: bool  # the hidden `website` field held something (leads/abuse/honeypot.py)
    # Why it looks like spam: kept (stored, flagged, not announced), never refused.
    spam_reasons: tuple[str, ...] = ()
    # Proofs of a human, checked by the edge after parsing; not stored.
    form_token: str | None = None
    captcha_token: str | None = None

    @property
    def is_spam(self) -> bool:
        return bool(self.spam_reasons)

    @property
    def spam_reason(self) -> str | None:
        return ",".join(self.spam_reasons)[:200] or None

    def flagged(self, *reasons: str) -> Submission:
        """The same submission with more spam reasons."""
        new = tuple(r for r in reasons if r not in self.spam_reasons)
        return replace(self, spam_reasons=(*self.spam_reasons, *new)) if new else self


class _Reader:
    """Collects field errors while reading values out of the raw mapping."""

    def __init__(self, raw: Mapping[str, object]):
        self.raw = raw
        self.errors: list[FieldError] = []

    def fail(
        self, field: str, code: str, message: str, params: tuple[tuple[str, str | int], ...] = ()
    ) -> None:
        self.errors.append(FieldError(field, code, message, params))

    def text(self, field: str, *, max_length: int, multiline: bool = False) -> str | None:
        """An optional text field: absent, null and "" (after trimming) all mean None."""
        value = self.raw.get(field)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(field, "invalid_type", N_("Please enter text here."))
            return None
        try:
            cleaned = clean_text(value, max_length=max_length, multiline=multiline)
        except Invalid as exc:
            self.fail(field, exc.code, exc.message, exc.params)
            return None
        return cleaned or None


def parse_submission(
    raw: Mapping[str, object],
    *,
    forms: FormCatalog,
    default_region: str,
    languages: LanguageChoice | None = None,
) -> Submission:
    """Validate and normalise; raise :class:`InvalidSubmission` naming every bad field.

    With ``languages``, the form is the one shown in the request's language: an interest
    is one of that language's, and the consent its wording (leads.core.wording)."""
    r = _Reader(raw)
    for field in raw:
        if field not in FIELDS:
            # Echoed back safely: a JSON key may hold a lone surrogate, which UTF-8 cannot carry.
            shown = str(field).encode("utf-8", "backslashreplace").decode()[:100]
            r.fail(shown, "unknown_field", N_("This field is not part of the form."))

    slug = r.text("form", max_length=50) or forms.default_slug
    form = forms.forms.get(slug)
    if form is None:
        r.fail("form", "unknown_form", N_("There is no form with this name."))
    elif languages is not None:
        form = languages.shown(form)

    name = r.text("name", max_length=MAX_NAME)
    if name is not None and not has_visible_character(name):
        name = None  # only zero-width or format characters: as good as empty
    if name is None and not any(e.field == "name" for e in r.errors):
        r.fail("name", "required", N_("Please tell us your name."))

    email = r.text("email", max_length=320)
    if email is not None:
        try:
            email = clean_email(email)
        except Invalid as exc:
            r.fail("email", exc.code, exc.message, exc.params)
            email = None
    phone = r.text("phone", max_length=MAX_PHONE_INPUT)
    if phone is not None:
        try:
            phone = clean_phone(phone, region=default_region)
        except Invalid as exc:
            r.fail("phone", exc.code, exc.message, exc.params)
            phone = None
    if _blank(raw.get("email")) and _blank(raw.get("phone")):
        for f in ("email", "phone"):
            r.fail(f, "contact_required", N_("Please give an email address or a phone number."))

    preferred = r.text("preferred_contact", max_length=10)
    method: ContactMethod | None = None
    if preferred is not None:
        if preferred not in CONTACT_METHODS:
            r.fail("preferred_contact", "invalid_choice", N_("Please choose email, phone or text."))
        else:
            method = preferred
            needed = "email" if method == "email" else "phone"
            if _blank(raw.get(needed)):
                r.fail(needed, "required_for_preferred_contact", NEEDED_FOR[method])

    message = r.text("message", max_length=MAX_MESSAGE, multiline=True)
    interest = r.text("interest", max_length=200)
    if interest is not None and form is not None and interest not in form.interests:
        r.fail("interest", "invalid_choice", N_("Please choose one of the listed options."))

    consent = raw.get("consent")
    if not is_checked(consent):
        r.fail("consent", "consent_required", N_("Please tick the box so we may contact you."))

    attribution = {f: r.text(f, max_length=MAX_ATTRIBUTION) for f in ATTRIBUTION}
    honeypot = not _blank(raw.get("website"))

    if r.errors:
        language = languages.language(form) if languages is not None else None
        raise InvalidSubmission(r.errors, language=language)
    assert form is not None
    assert name is not None
    return Submission(
        form=form,
        name=name,
        email=email,
        phone=phone,
        preferred_contact=method,
        message=message,
        interest=interest,
        attribution=attribution,
        honeypot=honeypot,
        form_token=_token(raw.get("form_token")),
        captcha_token=next(
            (t for t in (_token(raw.get(f)) for f in CAPTCHA_FIELDS) if t is not None), None
        ),
    )


def _token(value: object) -> str | None:
    """An opaque token as sent; anything that is not plain text counts as absent."""
    if isinstance(value, str) and value.strip() and len(value) <= 4096 and value.isprintable():
        return value.strip()
    return None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
