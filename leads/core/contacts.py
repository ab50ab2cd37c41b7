"""How a person is recognised by their contact details, as the intake recognises a returning
visitor: an email address lowercased whole, a phone number in E.164. Erasure and the subject
export look people up with these, so they find what the intake filed under them.

Also the checks for the clinic's own recipients, shared by the settings and the forms file:
an inbox address (:func:`inbox_address`) and a number to text (:func:`e164_number`).
"""

from __future__ import annotations

import unicodedata
from email.utils import parseaddr

import phonenumbers

from leads.core.clinic import clinic_phone

MAX_EMAIL_LENGTH = 320


def email_key(address: str) -> str:
    """The address as ``Lead.email_key`` holds it: trimmed, NFC, lowercased whole. ValueError
    if it cannot be an address."""
    key = unicodedata.normalize("NFC", address.strip()).lower()
    local, at, domain = key.rpartition("@")
    if not at or not local or not domain or len(key) > MAX_EMAIL_LENGTH or " " in key:
        raise ValueError("is not an email address, such as name@example.com")
    return key


def phone_key(number: str, region: str) -> str:
    """The number in E.164, read in ``region`` when written without +country (the intake's
    reading: national formats such as ``(202) 555-0143`` are fine). ValueError if it is not
    a valid number."""
    return clinic_phone(number.strip(), region).e164


def _has_blanks(value: str) -> bool:
    return any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)


def inbox_address(value: str) -> str:
    """An operator's address, optionally with a display name: ``Clinic <desk@clinic.example>``
    (LEADS_INBOX, LEADS_MAIL_FROM, a form's ``inbox``). No commas or semicolons, so a list
    of them can be written with commas. ValueError naming the value otherwise."""
    value = value.strip()
    _, found = parseaddr(value)
    local, at, host = found.rpartition("@")
    well_formed = (
        local
        and at
        and host
        and found in value  # parseaddr drops what it does not understand; nothing may be lost
        and not _has_blanks(found)
        and not any(c in value for c in "\r\n\0,;")
        and "." not in (host[0], host[-1])
        and ".." not in host
    )
    if not well_formed:
        raise ValueError(f"{value!r} is not an email address")
    return value


def e164_number(text: str) -> str:
    """A number written in E.164 (``+`` and the country code, then the digits: spaces and
    dashes between them are allowed), checked with phonenumbers, given back as E.164.
    ValueError with a plain reason otherwise: where texts go, no region is guessed."""
    value = text.strip()
    if not value.startswith("+"):
        raise ValueError(f"{_masked(value)} must start with + and the country code")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{_masked(value)} is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{_masked(value)} is not a valid number; check the digits")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _masked(value: str) -> str:
    """A number as an error may show it: its last 3 digits."""
    digits = [c for c in value if c.isdigit()]
    return f"a number ending {''.join(digits[-3:])}" if len(digits) > 3 else "a number"
