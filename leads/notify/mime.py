"""Email headers written safely, and the MIME message an SMTP server gets.

Python's ``EmailMessage``, given a header as a plain string, reads any ``=?charset?b?...?=``
in it as an RFC 2047 encoded word and writes the *decoded* text back raw: a visitor's name
could then add a ``Bcc`` or end the header block. So no header here is a plain string, and
no header passes through the library's parser. Each is a :class:`Header`, whose folded form
we make ourselves:

- header text is cleaned first (:func:`clean_header_text`): line breaks and other control
  characters become spaces, bidi controls are dropped;
- printable ASCII without ``=?`` is written as it is, folded at spaces;
- anything else is written wholly as encoded words (UTF-8, base64), which a mail program
  decodes once, to exactly that text;
- addresses are written as ASCII (the domain in IDNA form); an address whose local part is
  not ASCII only when the server offers SMTPUTF8 (RFC 6531/6532), since RFC 2047 forbids
  encoded words inside an address.

The message around them is written here too (:meth:`Outgoing.as_bytes`), in the form
``EmailMessage`` and its generator wrote it (the same headers, structure, boundary form and
transfer encodings) at about a tenth of their CPU.
"""

from __future__ import annotations

import base64
import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import formatdate, parseaddr

from email_validator import EmailNotValidError, validate_email

from leads.errors import PermanentDeliveryError
from leads.notify.content import Email
from leads.notify.mime_body import body_part, new_boundary

# RFC 2047 limits a line holding encoded words to 76 characters; plain lines follow suit.
MAX_LINE = 76
# Bytes of UTF-8 per encoded word: 39 bytes are 52 base64 characters, a 64-character word,
# which fits on a line after the longest name of a header that carries text ("Reply-To: ").
WORD_BYTES = 39
MAX_PLAIN_WORD = 900
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
ATEXT = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"
)
ASCII_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
# Written by to_outgoing itself; an Email's extra headers may not repeat them.
OWN_HEADERS = frozenset(
    ("from", "to", "subject", "message-id", "date", "reply-to", "mime-version")
) | frozenset(("content-type", "content-transfer-encoding"))
SPACES = re.compile(" {2,}")
# A bare address in dot-atom form, which parseaddr would return as it is.
DOT_ATOM_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def clean_header_text(value: str) -> str:
    """One line of text: controls (CR, LF, NUL, U+0085...) and line or paragraph separators
    become spaces, bidi controls and lone surrogates are dropped, spaces are collapsed."""
    if value.isprintable():  # the usual case: no control, separator, bidi or surrogate
        return SPACES.sub(" ", value).strip()
    chars = []
    for char in value:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS or category == "Cs":
            continue
        chars.append(" " if category in ("Cc", "Zl", "Zp") else char)
    return SPACES.sub(" ", "".join(chars)).strip()


def is_plain(text: str) -> bool:
    """Safe to write as it is: printable ASCII that no reader can take for an encoded word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def encoded_words(text: str) -> list[str]:
    """``text`` as UTF-8 base64 encoded words, split between characters, never inside one."""
    chunks = [b""]
    for char in text:
        data = char.encode()
        if len(chunks[-1]) + len(data) > WORD_BYTES:
            chunks.append(b"")
        chunks[-1] += data
    return [f"=?utf-8?b?{base64.b64encode(chunk).decode()}?=" for chunk in chunks]


class Header(str):
    """A header value, folded by us. Its string value is the text a reader should see;
    :meth:`fold` is what the message carries."""

    name: str
    pieces: tuple[str, ...]

    def __new__(cls, name: str, shown: str, pieces: Sequence[str]) -> Header:
        header = super().__new__(cls, shown)
        header.name = name
        header.pieces = tuple(pieces)
        return header

    def fold(self, linesep: str = "\r\n") -> str:
        """``Name: piece piece`` on as few lines of at most MAX_LINE as the pieces allow;
        a fold is always at a space between pieces."""
        lines = [f"{self.name}:"]
        for index, piece in enumerate(self.pieces):
            if index and len(lines[-1]) + 1 + len(piece) > MAX_LINE:
                lines.append("")
            lines[-1] += " " + piece
        return linesep.join(lines) + linesep


def text_header(name: str, value: str) -> Header:
    """An unstructured header (Subject)."""
    text = clean_header_text(value)
    words = text.split(" ")
    # A word too long to fold would break RFC 5322's 998-character line limit.
    plain = is_plain(text) and max(len(w) for w in words) <= MAX_PLAIN_WORD
    return Header(name, text, words if plain else encoded_words(text))


def _phrase(name: str) -> list[str]:
    """A display name as header pieces: words, one quoted string, or encoded words."""
    if not is_plain(name):
        return encoded_words(name)
    if all(c in ATEXT or c == " " for c in name):
        return name.split(" ")
    return [_quoted(name)]


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def address_header(name: str, mailboxes: Sequence[tuple[str, str]]) -> Header:
    """From, To or Reply-To, from (display name, writable address) pairs."""
    pieces: list[str] = []
    shown: list[str] = []
    for index, (display, address) in enumerate(mailboxes):
        display = clean_header_text(display)
        mailbox = [*_phrase(display), f"<{address}>"] if display else [address]
        if index < len(mailboxes) - 1:
            mailbox[-1] += ","
        pieces += mailbox
        shown.append(f"{display} <{address}>" if display else address)
    return Header(name, ", ".join(shown), pieces)


def header_address(address: str, *, utf8: bool) -> str:
    """The address as a header and the SMTP envelope carry it: the domain in ASCII (IDNA),
    the local part as it is. A non-ASCII local part needs ``utf8`` (SMTPUTF8).

    Raises PermanentDeliveryError for an address that cannot be written; the reason never
    quotes the address.
    """
    address = address.strip()
    local, _, domain = address.rpartition("@")
    if not local or not domain:
        raise PermanentDeliveryError("not an email address")
    if "=?" in local:
        raise PermanentDeliveryError("an email address that looks like an encoded word")
    if not address.isascii():
        try:
            valid = validate_email(address, check_deliverability=False)
        except EmailNotValidError as exc:
            raise PermanentDeliveryError("an email address that cannot be written") from exc
        local, domain = valid.local_part, valid.ascii_domain
    if not local.isascii() and not utf8:
        raise PermanentDeliveryError(
            "an email address with non-ASCII characters before the @, "
            "and the server does not offer SMTPUTF8"
        )
    safe_local = all(c in ATEXT or c == "." or (c > "~" and c.isprintable()) for c in local)
    if not safe_local or not ASCII_DOMAIN.fullmatch(domain):
        raise PermanentDeliveryError("an email address that cannot be written")
    return f"{local}@{domain}"


def mailbox(value: str, *, utf8: bool) -> tuple[str, str]:
    """``Name <address>`` (or a bare address) as (display name, writable address)."""
    if DOT_ATOM_ADDRESS.fullmatch(value):  # a bare address: no need to parse it
        return "", header_address(value, utf8=utf8)
    display, address = parseaddr(value)
    return display, header_address(address or value, utf8=utf8)


@functools.lru_cache(maxsize=64)
def settings_mailbox(value: str, *, utf8: bool) -> tuple[str, str]:
    """:func:`mailbox` for a value from the settings or a form (LEADS_MAIL_FROM and the
    clinic's name), which every message repeats: worked out once. Never a visitor's."""
    return mailbox(value, utf8=utf8)


def one_line_text(value: str) -> str:
    """Text for an email API's subject or name field, which the provider writes into a
    header itself: one clean line, and wholly encoded words if it holds ``=?``, so that the
    provider's MIME builder cannot take the visitor's text for an encoded word."""
    text = clean_header_text(value)
    return " ".join(encoded_words(text)) if "=?" in text else text


def one_line_mailbox(value: str, *, utf8: bool) -> str:
    """``Name <address>`` on one line, for an email API's from, to or reply-to field. A name
    is left in Unicode (the provider encodes it) but quoted if it holds specials."""
    display, address = mailbox(value, utf8=utf8)
    name = clean_header_text(display)
    if not name:
        return address
    if "=?" in name:
        return f"{one_line_text(name)} <{address}>"
    if not all(c in ATEXT or c == " " for c in name):
        name = _quoted(name)
    return f"{name} <{address}>"


@dataclass(frozen=True)
class Outgoing:
    """What an SMTP server is given: the envelope and the message's parts."""

    sender: str
    recipients: list[str]
    headers: tuple[Header, ...]  # From, To, Subject, Message-ID, Date, Reply-To, the rest
    text: str
    html: str
    smtputf8: bool  # the message or envelope holds a UTF-8 address: MAIL FROM ... SMTPUTF8

    def as_bytes(self, *, eight_bit: bool) -> bytes:
        """The message, with CRLF line ends; 7-bit bodies unless the server takes 8BITMIME.

        Written here, not by ``email.generator``, in the form it writes (the same headers,
        structure, boundary form and transfer encodings), at a fraction of its CPU.
        """
        parts = [
            body_part("plain", self.text, eight_bit=eight_bit),
            body_part("html", self.html, eight_bit=eight_bit, mime_version=True),
        ]
        boundary = new_boundary(parts)
        lines = [header.fold() for header in self.headers]
        lines.append(
            f'MIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n boundary="{boundary}"'
            f"\r\n\r\n--{boundary}\r\n{parts[0]}\r\n--{boundary}\r\n{parts[1]}"
            f"\r\n--{boundary}--\r\n"
        )
        return "".join(lines).encode("utf-8" if self.smtputf8 else "ascii", "surrogateescape")


def to_outgoing(email: Email, *, smtputf8: bool) -> Outgoing:
    """The message for ``email``. ``smtputf8``: the server offers SMTPUTF8.

    Raises PermanentDeliveryError when a recipient or the sender cannot be written; a
    Reply-To that cannot be written is left out (the clinic's email shows the address in
    its body).
    """
    sender = settings_mailbox(email.sender, utf8=smtputf8)
    to = [mailbox(a, utf8=smtputf8) for a in email.to]
    headers = [
        address_header("From", [sender]),
        address_header("To", to),
        text_header("Subject", email.subject),
        text_header("Message-ID", email.message_id),
        # RFC 5322 requires it, and spam filters count its absence: the moment it is written.
        text_header("Date", formatdate(usegmt=True)),
    ]
    written = [sender, *to]
    if email.reply_to:
        try:
            reply_to = mailbox(email.reply_to, utf8=smtputf8)
        except PermanentDeliveryError:
            pass
        else:
            headers.append(address_header("Reply-To", [reply_to]))
            written.append(reply_to)
    for name, value in email.headers.items():
        if name.lower() in OWN_HEADERS:
            raise ValueError(f"{name} is written by to_outgoing itself")
        headers.append(text_header(name, value))
    return Outgoing(
        sender=sender[1],
        recipients=[address for _, address in to],
        headers=tuple(headers),
        text=email.text,
        html=email.html,
        smtputf8=not all(address.isascii() for _, address in written),
    )
