"""Who the visitor is dealing with: the clinic's name, phone number and website.

One :class:`ClinicIdentity` is resolved per page or notification (the settings, overlaid
with a form's own values, :meth:`leads.core.forms.Form.identity`), so the pages and the
emails give the same answer. The checks here are shared by the settings and the forms file;
each raises ``ValueError`` with a short reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from leads.core.weburls import web_url

MAX_NAME_LENGTH = 100
MAX_PHONE_INPUT = 40
# What the pages say when no name is configured.
UNNAMED = "the clinic"


@dataclass(frozen=True, slots=True)
class Phone:
    """A number as a tel: link needs it (E.164) and as a person reads it."""

    e164: str
    display: str


def clinic_name(value: str) -> str:
    """One line of text, at most MAX_NAME_LENGTH characters."""
    name = " ".join(value.split())
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value.replace("\t", " ")):
        raise ValueError("must be one line of text without control characters")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"is longer than {MAX_NAME_LENGTH} characters")
    return name


def clinic_phone(value: str, region: str) -> Phone:
    """A valid number, read in ``region`` when written without +country. It is shown in its
    national format when it is in ``region``, in the international one otherwise."""
    try:
        if len(value) > MAX_PHONE_INPUT:
            raise phonenumbers.NumberParseException(0, "too long")
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number, such as +1 202 555 0123") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number; check the digits and the country code")
    local = phonenumbers.region_code_for_number(number) == region
    style = phonenumbers.PhoneNumberFormat
    return Phone(
        e164=phonenumbers.format_number(number, style.E164),
        display=phonenumbers.format_number(
            number, style.NATIONAL if local else style.INTERNATIONAL
        ),
    )


def clinic_url(value: str) -> str:
    """The clinic's own site: an absolute http(s) URL."""
    return web_url(value)


@dataclass(frozen=True, slots=True)
class ClinicIdentity:
    name: str = ""
    phone: Phone | None = None
    url: str | None = None

    @property
    def called(self) -> str:
        """How a sentence names the clinic: its name, or "the clinic"."""
        return self.name or UNNAMED

    @property
    def website_words(self) -> str:
        """How a sentence names its website, whatever the name ends with."""
        return f"the {self.name} website" if self.name else "the clinic's website"

    @property
    def phone_e164(self) -> str | None:
        return self.phone.e164 if self.phone else None

    @property
    def phone_display(self) -> str | None:
        return self.phone.display if self.phone else None

    def overlaid(self, *, name: str | None, phone: Phone | None, url: str | None) -> ClinicIdentity:
        """This identity with each value that is given replacing its own."""
        return ClinicIdentity(
            name=self.name if name is None else name,
            phone=self.phone if phone is None else phone,
            url=self.url if url is None else url,
        )
