"""The time trap: a short signed token saying when, and for which form, a form was served.

The hosted form (and ``GET /api/form-token``) puts ``issue_form_token(secret, form, now)``
in a hidden field; the submission is judged with ``check_form_token(...)``, which answers
``None`` when all is well or one reason for flagging the lead as spam:

    token_missing     no token (or an empty one)
    token_forged      not a token we signed: bad encoding, length, version or signature
    token_wrong_form  signed by us, but for another form
    too_fast          submitted sooner than ``min_fill_seconds`` after the form was served
                      (also when "served" lies in the future, e.g. clocks apart)
    token_expired     older than ``max_age_seconds`` (default ``MAX_AGE_SECONDS``, 24 h)

Format: 27 bytes, base64url without padding = 36 characters from ``[A-Za-z0-9_-]``::

    version (1) | issued at, ms since the epoch (6) | form tag (4) | HMAC-SHA256 (16)

The MAC covers the first 11 bytes and is keyed with a sub-key derived from the secret
(``HMAC(secret, "leads form token v1")``), so these tokens can never be confused with
anything else signed with ``LEADS_SECRET_KEY``. The form tag is 4 bytes of a keyed hash of
the slug: enough to tell a token of another form apart, while keeping the token short.
27 is a multiple of 3, so every token has exactly one text form: any changed character
changes the bytes and breaks the signature. Tokens are not secret and may be reused
within their lifetime; they slow bots down, they do not authenticate anyone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

MAX_AGE_SECONDS = 24 * 60 * 60
"""A form left open longer than a day is submitted as spam-flagged (not lost)."""

_VERSION = 1
_PURPOSE = b"leads form token v1"
_MAC_BYTES = 16
_TOKEN_BYTES = 1 + 6 + 4 + _MAC_BYTES
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{36}")


def issue_form_token(secret: str, form: str, now: float) -> str:
    """A token for ``form`` issued at ``now`` (seconds since the epoch, ``time.time()``)."""
    key = _subkey(secret)
    body = bytes([_VERSION]) + int(now * 1000).to_bytes(6, "big") + _form_tag(key, form)
    return _b64(body + _mac(key, body))


def check_form_token(
    token: str | None,
    *,
    secret: str,
    form: str,
    now: float,
    min_fill_seconds: float,
    max_age_seconds: float = MAX_AGE_SECONDS,
) -> str | None:
    """``None`` if ``token`` was issued by us for ``form`` long enough ago, else a reason."""
    if not token:
        return "token_missing"
    if _TOKEN_RE.fullmatch(token) is None:
        return "token_forged"
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return "token_forged"
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    key = _subkey(secret)
    if len(raw) != _TOKEN_BYTES or not hmac.compare_digest(mac, _mac(key, body)):
        return "token_forged"
    if body[0] != _VERSION:
        return "token_forged"
    if not hmac.compare_digest(body[7:11], _form_tag(key, form)):
        return "token_wrong_form"
    elapsed = now - int.from_bytes(body[1:7], "big") / 1000
    if elapsed < min_fill_seconds:
        return "too_fast"
    if elapsed > max_age_seconds:
        return "token_expired"
    return None


def _subkey(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _form_tag(key: bytes, form: str) -> bytes:
    return hmac.new(key, b"form:" + form.encode(), hashlib.sha256).digest()[:4]


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
