"""Normalisers for single submitted values. Each returns the clean value or raises
:class:`Invalid` with a stable code and a sentence a visitor can act on (English, marked
for the catalogs; its figures in ``params``)."""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from leads.translatable import N_


class Invalid(ValueError):
    def __init__(self, code: str, message: str, params: tuple[tuple[str, int], ...] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.params = params


# Characters no visitor means to type: C0/C1 controls (Unicode category Cc: U+0000-001F,
# U+007F-009F, NEL among them), lone surrogates (Cs: U+D800-DFFF, which JSON can smuggle in
# as "\ud800" and no database can store) and the other line breaks; a multi-line field may
# hold LF and TAB. One regular expression instead of a category look-up per character.
_FORBIDDEN_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_FORBIDDEN_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")


# What starts a new line besides CR and LF: NEL (U+0085), LINE SEPARATOR (U+2028) and
# PARAGRAPH SEPARATOR (U+2029). A mail client shows them as line breaks, so in a name they
# could forge lines of the email ("Ann\u2028Email: ..."); in the message they become "\n".
LINE_BREAKS = "\u0085\u2028\u2029"
# Bidirectional embeddings, overrides and isolates reorder the text after them: in a name
# they can turn the rest of an email's subject around (U+202E). Nobody types them in a
# single-line field. The marks (LRM U+200E, RLM U+200F, ALM U+061C) move no letters, and
# right-to-left keyboards insert them, so they are allowed.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")
# Letters that draw nothing: Hangul fillers, and the blank braille pattern.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def clean_text(value: str, *, max_length: int, multiline: bool = False) -> str:
    """Trim, normalise to NFC, refuse control characters (and, on one line, line breaks and
    bidirectional controls), enforce a length."""
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        for line_break in LINE_BREAKS:
            value = value.replace(line_break, "\n")
    if (_FORBIDDEN_MULTILINE if multiline else _FORBIDDEN_ONE_LINE).search(value):
        if multiline:
            raise Invalid("control_characters", N_("Please remove special control characters."))
        raise Invalid("control_characters", N_("Please keep this to one line of plain text."))
    if not multiline and _BIDI.search(value):
        raise Invalid(
            "bidi_controls",
            N_(
                "Please type this again rather than pasting it: it contains hidden "
                "characters that change the direction of the text."
            ),
        )
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > max_length:
        raise Invalid(
            "too_long",
            N_("Please keep this to %(count)s characters or fewer."),
            (("count", max_length),),
        )
    return value


def has_visible_character(value: str) -> bool:
    """Whether anything in ``value`` draws on the screen: a letter, digit, punctuation mark
    or symbol. Spaces, zero-width and other format characters (U+200B, ZWJ, U+FEFF, U+2060)
    and combining marks on their own do not count; inside a name they are fine."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in _BLANK_LETTERS for c in value)


def clean_email(value: str) -> str:
    """The address as email-validator normalises it; no DNS look-ups.

    email-validator already refuses controls, bidi and other invisible characters. Also
    refused: a local part holding "=?", which mail programs would decode as an RFC 2047
    encoded word (RFC 2047 forbids them in an address), so no email header could carry it.
    """
    value = clean_text(value, max_length=320)
    invalid = Invalid("invalid_email", N_("Please enter an email address like name@example.com."))
    try:
        valid = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise invalid from exc
    if "=?" in valid.local_part:
        raise invalid
    return valid.normalized


# phonenumbers accepts long strings, but no real number needs more than this.
MAX_PHONE_INPUT = 40


def clean_phone(value: str, *, region: str) -> str:
    """A valid number in E.164, read in ``region`` when written without +country."""
    value = clean_text(value, max_length=MAX_PHONE_INPUT)
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid("invalid_phone", N_("Please enter a phone number we can call.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise Invalid("invalid_phone", N_("Please check the phone number; it looks incomplete."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


TRUE_WORDS = frozenset({"true", "on", "yes", "1"})


def is_checked(value: object) -> bool:
    """JSON ``true``, or a ticked box as a browser sends it."""
    if value is True:
        return True
    return isinstance(value, str) and value.strip().lower() in TRUE_WORDS
