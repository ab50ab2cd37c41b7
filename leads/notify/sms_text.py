"""What a text to the front desk says, in one SMS segment.

    New enquiry (<form title>) from <first name>. Open: <link>

and with LEADS_SMS_DETAIL=contact, `` Phone: <visitor's phone>`` after it. Nothing else:
a text shows on a lock screen, so it carries no message, no email and no surname; the
link needs a staff sign-in.

The rule, so that it is one segment of GSM-7 (at most 160 characters, never UCS-2):

1. Visitor text (the first name) and the form's title are made one line of GSM-7: letters
   outside GSM-7 are transliterated to their base letter where Unicode decomposes them
   (``Łukasz`` stays recognisable as ``Lukasz``; ``é`` is in GSM-7 and kept), the rest is
   dropped; control characters and line breaks become spaces, runs of spaces one. A name
   with nothing left is ``someone``; a title with nothing left, the form's slug.
2. If the text is still longer than 160 characters (counting the GSM-7 extension
   characters ``^{}\\[~]|€`` as two), the form's title is cut first, down to
   :data:`MIN_TITLE` characters, then the first name, down to :data:`MIN_NAME`. Cuts are
   plain: no ellipsis (``…`` is not GSM-7, and ``...`` spends three characters).
3. The link and the phone are never cut; a link so long that the rest does not fit is
   the operator's LEADS_PUBLIC_URL to shorten (the text is then sent as it is, longer).
"""

from __future__ import annotations

import unicodedata

from leads.core.forms import Form
from leads.storage.models import Lead

LIMIT = 160
MIN_TITLE = 8
MIN_NAME = 3
NOBODY = "someone"

# The GSM 03.38 default alphabet, and its extension table (each of those costs two).
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€")


def gsm_length(text: str) -> int:
    """Septets ``text`` takes in GSM-7 (an extension character takes two)."""
    return sum(2 if c in GSM_EXTENDED else 1 for c in text)


def is_gsm(text: str) -> bool:
    return all(c in GSM_BASIC or c in GSM_EXTENDED for c in text)


def gsm_line(text: str) -> str:
    """``text`` as one line of GSM-7: transliterated where a base letter exists, otherwise
    dropped; control characters and line breaks as spaces; spaces collapsed."""
    kept = []
    for char in unicodedata.normalize("NFC", text):
        if unicodedata.category(char)[0] in ("C", "Z"):  # controls, line breaks, spaces
            kept.append(" ")
        elif char in GSM_BASIC or char in GSM_EXTENDED:
            kept.append(char)
        else:
            base = unicodedata.normalize("NFKD", char)
            kept.extend(c for c in base if c in GSM_BASIC and c not in "\r\n")
            if char in "Łł":  # no decomposition, but an obvious base letter
                kept.append("L" if char == "Ł" else "l")
    return " ".join("".join(kept).split())


def first_name(full_name: str | None) -> str:
    """The first word of the name, as GSM-7."""
    words = gsm_line(full_name or "").split()
    return words[0] if words else NOBODY


def _cut(text: str, septets: int) -> str:
    """The longest start of ``text`` within ``septets``, without trailing spaces."""
    out = []
    used = 0
    for char in text:
        used += gsm_length(char)
        if used > septets:
            break
        out.append(char)
    return "".join(out).rstrip()


def compose(title: str, name: str, link: str, phone: str | None = None) -> str:
    """The text, by the rule in this module's docstring."""
    tail = f". Open: {link}" + (f" Phone: {phone}" if phone else "")

    def text(t: str, n: str) -> str:
        return f"New enquiry ({t}) from {n}{tail}"

    over = gsm_length(text(title, name)) - LIMIT
    if over > 0 and len(title) > MIN_TITLE:
        title = _cut(title, max(MIN_TITLE, gsm_length(title) - over))
        over = gsm_length(text(title, name)) - LIMIT
    if over > 0 and len(name) > MIN_NAME:
        name = _cut(name, max(MIN_NAME, gsm_length(name) - over))
    return text(title, name)


def lead_text(lead: Lead, form: Form | None, *, link: str, with_phone: bool) -> str:
    """The text announcing ``lead``: see the module docstring."""
    title = gsm_line(form.title if form else "") or gsm_line(lead.form) or "website form"
    phone = gsm_line(lead.phone) if with_phone and lead.phone else None
    return compose(title, first_name(lead.name), link, phone)
