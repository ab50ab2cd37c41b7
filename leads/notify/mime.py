"""Email headers written safely, and the MIME message an SMTP server gets.

Python's ``EmailMessage``, given a header as a plain string, reads any ``=?charset?b?...?=``
in it as an RFC 2047 encoded word and writes the *decoded* text back raw: a visitor's name
could then add a ``Bcc`` or end the header block. So no header here is a plain string. Each
is a :class:`Header`, whose folded form we make ourselves and the library writes as is:

- header text is cleaned first (:func:`clean_header_text`): line breaks and other control
  characters become spaces, bidi controls are dropped;
- printable ASCII without ``=?`` is written as it is, folded at spaces;
- anything else is written wholly as encoded words (UTF-8, base64), which a mail program
  decodes once, to exactly that text;
- addresses are written as ASCII (the domain in IDNA form); an address whose local part is
  not ASCII only when the server offers SMTPUTF8 (RFC 6531/6532), since RFC 2047 forbids
  encoded words inside an address.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import formatdate, parseaddr

from email_validator import EmailNotValidError, validate_email

from leads.errors import PermanentDeliveryError
from leads.notify.content import Email

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


def clean_header_text(value: str) -> str:
    """One line of text: controls (CR, LF, NUL, U+0085...) and line or paragraph separators
    become spaces, bidi controls and lone surrogates are dropped, spaces are collapsed."""
    chars = []
    for char in value:
        category = unicodedata.category(char)
        if char in BIDI_CONTROLS or category == "Cs":
            continue
        chars.append(" " if category in ("Cc", "Zl", "Zp") else char)
    return re.sub(" {2,}", " ", "".join(chars)).strip()


def is_plain(text: str) -> bool:
    """Safe to write as it is: printable ASCII that no reader can take for an encoded word."""
    return all(" " <= c <= "~" for c in text) and "=?" not in text


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
    """A header value, folded by us. Its string value is the text a reader should see.

    ``EmailPolicy.header_store_parse`` keeps a value whose ``name`` is the header's name as
    it is, and ``policy.fold`` then calls its ``fold``: the library neither parses nor
    re-encodes it.
    """

    name: str
    pieces: tuple[str, ...]

    def __new__(cls, name: str, shown: str, pieces: Sequence[str]) -> Header:
        header = super().__new__(cls, shown)
        header.name = name
        header.pieces = tuple(pieces)
        return header

    def fold(self, *, policy: Policy) -> str:
        """``Name: piece piece`` on as few lines of at most MAX_LINE as the pieces allow;
        a fold is always at a space between pieces."""
        lines = [f"{self.name}:"]
        for index, piece in enumerate(self.pieces):
            if index and len(lines[-1]) + 1 + len(piece) > MAX_LINE:
                lines.append("")
            lines[-1] += " " + piece
        return policy.linesep.join(lines) + policy.linesep


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
    display, address = parseaddr(value)
    return display, header_address(address or value, utf8=utf8)


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
    """What an SMTP server is given: the envelope and the message."""

    sender: str
    recipients: list[str]
    message: EmailMessage
    smtputf8: bool  # the message or envelope holds a UTF-8 address: MAIL FROM ... SMTPUTF8

    def as_bytes(self, *, eight_bit: bool) -> bytes:
        """The message, with CRLF line ends; 7-bit bodies unless the server takes 8BITMIME."""
        policy = SMTPUTF8 if self.smtputf8 else SMTP
        if not eight_bit:
            policy = policy.clone(cte_type="7bit")
        return self.message.as_bytes(policy=policy)


def to_outgoing(email: Email, *, smtputf8: bool) -> Outgoing:
    """The message for ``email``. ``smtputf8``: the server offers SMTPUTF8.

    Raises PermanentDeliveryError when a recipient or the sender cannot be written; a
    Reply-To that cannot be written is left out (the clinic's email shows the address in
    its body).
    """
    sender = mailbox(email.sender, utf8=smtputf8)
    to = [mailbox(a, utf8=smtputf8) for a in email.to]
    message = EmailMessage()
    message["From"] = address_header("From", [sender])
    message["To"] = address_header("To", to)
    message["Subject"] = text_header("Subject", email.subject)
    message["Message-ID"] = text_header("Message-ID", email.message_id)
    # RFC 5322 requires it, and spam filters count its absence: the moment it is written.
    message["Date"] = text_header("Date", formatdate(usegmt=True))
    written = [sender, *to]
    if email.reply_to:
        try:
            reply_to = mailbox(email.reply_to, utf8=smtputf8)
        except PermanentDeliveryError:
            pass
        else:
            message["Reply-To"] = address_header("Reply-To", [reply_to])
            written.append(reply_to)
    for name, value in email.headers.items():
        message[name] = text_header(name, value)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return Outgoing(
        sender=sender[1],
        recipients=[address for _, address in to],
        message=message,
        smtputf8=not all(address.isascii() for _, address in written),
    )
