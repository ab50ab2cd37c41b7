"""How a person is recognised by their contact details, as the intake recognises a returning
visitor: an email address lowercased whole, a phone number in E.164. Erasure and the subject
export look people up with these, so they find what the intake filed under them."""

from __future__ import annotations

import unicodedata

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
