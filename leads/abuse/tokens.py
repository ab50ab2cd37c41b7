"""The time trap: a short signed token saying when, and for which form, a form was served.

The hosted form (and ``GET /api/form-token``) puts ``issue_form_token(secret, form, now)``
in a hidden field; the submission is judged with ``check_form_token(...)``, which answers
``None`` when all is well or one :class:`TokenReason` for flagging the lead as spam.
:class:`TimeTrap` is that check as a spam rule (leads/abuse/rules.py).

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
from collections.abc import Sequence
from typing import ClassVar

from leads.abuse.rules import Reason, RuleSetup, Screened, Visit

MAX_AGE_SECONDS = 24 * 60 * 60
"""A form left open longer than a day is submitted as spam-flagged (not lost)."""

_VERSION = 1
_PURPOSE = b"leads form token v1"
_MAC_BYTES = 16
_TOKEN_BYTES = 1 + 6 + 4 + _MAC_BYTES
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{36}")


class TokenReason(Reason):
    # Also when "served" lies in the future (clocks apart, or a token made up).
    TOO_FAST = "too_fast", "Sent sooner than `LEADS_MIN_FILL_SECONDS` after the form was served."
    EXPIRED = "token_expired", "The form was served more than 24 hours ago."
    # Bad encoding, length, version or signature.
    FORGED = (
        "token_forged",
        "The `form_token` is not one leads signed (or was signed with another secret key).",
    )
    WRONG_FORM = "token_wrong_form", "The `form_token` belongs to another form."
    MISSING = "token_missing", "No `form_token`, with `LEADS_REQUIRE_FORM_TOKEN=true`."


def issue_form_token(secret: str, form: str, now: float) -> str:
    """A token for ``form`` issued at ``now`` (seconds since the epoch, from a clock)."""
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
) -> TokenReason | None:
    """``None`` if ``token`` was issued by us for ``form`` long enough ago, else a reason."""
    if not token:
        return TokenReason.MISSING
    if _TOKEN_RE.fullmatch(token) is None:
        return TokenReason.FORGED
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return TokenReason.FORGED
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    key = _subkey(secret)
    if len(raw) != _TOKEN_BYTES or not hmac.compare_digest(mac, _mac(key, body)):
        return TokenReason.FORGED
    if body[0] != _VERSION:
        return TokenReason.FORGED
    if not hmac.compare_digest(body[7:11], _form_tag(key, form)):
        return TokenReason.WRONG_FORM
    elapsed = now - int.from_bytes(body[1:7], "big") / 1000
    if elapsed < min_fill_seconds:
        return TokenReason.TOO_FAST
    if elapsed > max_age_seconds:
        return TokenReason.EXPIRED
    return None


class TimeTrap:
    """The spam rule: a submission's form token, checked when it has one or one is required
    (``LEADS_REQUIRE_FORM_TOKEN``). The hosted form always sends one; a site's own form
    (JSON, or plain HTML without /embed.js) may not, and is then judged by the other rules."""

    name: ClassVar[str] = "time trap"
    reasons: ClassVar[type[Reason]] = TokenReason

    def __init__(self, *, secret: str, min_fill_seconds: float, required: bool) -> None:
        self._secret = secret
        self.min_fill_seconds = min_fill_seconds
        self.required = required

    @classmethod
    def from_settings(cls, setup: RuleSetup) -> TimeTrap:
        settings = setup.settings
        assert settings.secret_key is not None  # create_app makes sure there is one
        return cls(
            secret=settings.secret_key.get_secret_value(),
            min_fill_seconds=settings.min_fill_seconds,
            required=settings.require_form_token,
        )

    async def check(self, submission: Screened, visit: Visit) -> Sequence[Reason]:
        if submission.form_token is None and not self.required:
            return []
        reason = check_form_token(
            submission.form_token,
            secret=self._secret,
            form=submission.form.slug,
            now=visit.now,
            min_fill_seconds=self.min_fill_seconds,
        )
        return [reason] if reason else []


def _subkey(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _form_tag(key: bytes, form: str) -> bytes:
    return hmac.new(key, b"form:" + form.encode(), hashlib.sha256).digest()[:4]


def _mac(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
