"""The body of a notification email: its two text parts and their boundary, written as the
standard library's ``EmailMessage.set_content`` and ``add_alternative`` write them (the same
part headers, transfer encodings and boundary form), for :mod:`leads.notify.mime`.
"""

from __future__ import annotations

import binascii
import re
import secrets
import sys
from collections.abc import Sequence
from email.quoprimime import body_encode as quoted_printable

# A body line longer than this is sent quoted-printable or base64 (RFC 5322 says 78).
MAX_BODY_LINE = 78
LINE_END = re.compile(r"\r\n|\r|\n")


def transfer_encoded(text: str) -> tuple[str, str]:
    """(Content-Transfer-Encoding, body) for ``text`` as UTF-8, chosen as the standard
    library's content manager chooses: ``7bit`` for ASCII in short lines, ``8bit`` for other
    short lines, else quoted-printable or base64, whichever its sniff of the first ten lines
    finds shorter. Lines end in LF here."""
    lines = text.encode("utf-8").splitlines()
    body = b"\n".join(lines) + b"\n"
    if max((len(line) for line in lines), default=0) <= MAX_BODY_LINE:
        if body.isascii():
            return "7bit", body.decode("ascii")
        return "8bit", body.decode("ascii", "surrogateescape")
    sniff = b"\n".join(lines[:10]) + b"\n"
    sniff_qp = quoted_printable(sniff.decode("latin-1"), MAX_BODY_LINE)
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        return "base64", as_base64(body)
    if len(lines) <= 10:
        return "quoted-printable", sniff_qp
    return "quoted-printable", quoted_printable(body.decode("latin-1"), MAX_BODY_LINE)


def as_base64(data: bytes) -> str:
    """Base64 in lines of 76 characters (57 bytes), each ending in LF."""
    step = MAX_BODY_LINE // 4 * 3
    return "".join(
        binascii.b2a_base64(data[i : i + step]).decode("ascii") for i in range(0, len(data), step)
    )


def body_part(subtype: str, text: str, *, eight_bit: bool, mime_version: bool = False) -> str:
    """One text/``subtype`` part, headers and body, CRLF line ends. An 8-bit body goes as
    base64 unless the server takes 8BITMIME. ``mime_version``: the part repeats
    ``MIME-Version``, as the standard library's ``add_alternative`` writes it."""
    cte, body = transfer_encoded(text)
    if cte == "8bit" and not eight_bit:
        cte, body = "base64", as_base64(body.encode("ascii", "surrogateescape"))
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n'
    if mime_version:
        head += "MIME-Version: 1.0\r\n"
    return head + "\r\n" + LINE_END.sub("\r\n", body)


def new_boundary(parts: Sequence[str]) -> str:
    """A random multipart boundary in the standard library's form, in none of the parts."""
    while True:
        boundary = f"==============={secrets.randbelow(sys.maxsize):019d}=="
        if not any(boundary in part for part in parts):
            return boundary
