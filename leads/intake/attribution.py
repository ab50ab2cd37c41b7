"""Where a submission came from, when the page did not say: a site's own form (a plain HTML
form, or its own ``fetch()``) often sends no ``page_url`` or ``utm_*`` fields, but the
browser sends a ``Referer`` naming the page. Its origin and path become ``page_url``, and
the ``utm_*`` values of its query fill those fields that are missing; nothing else of the
query is kept (it may hold a session id or someone's email)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

from leads.core.vocabulary import ATTRIBUTION
from leads.intake.fields import Invalid, clean_text
from leads.intake.submission import MAX_ATTRIBUTION

UTM_FIELDS = tuple(f for f in ATTRIBUTION if f.startswith("utm_"))


def tracking_value(value: object) -> str | None:
    """A hidden attribution value, cut to size; None if unusable. The visitor can neither
    see nor fix these fields, so a bad one is dropped rather than reported to them."""
    if not isinstance(value, str):
        return None
    try:
        return clean_text(value[:MAX_ATTRIBUTION], max_length=MAX_ATTRIBUTION) or None
    except Invalid:
        return None


def from_referer(raw: Mapping[str, object], referer: str | None) -> Mapping[str, object]:
    """``raw`` with ``page_url`` and missing ``utm_*`` taken from the ``Referer`` header,
    when the submission gave no ``page_url`` of its own."""
    if not referer or not _blank(raw.get("page_url")):
        return raw
    try:
        parts = urlsplit(referer)
    except ValueError:
        return raw
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return raw
    found: dict[str, object] = dict(raw)
    page = tracking_value(f"{parts.scheme}://{parts.netloc}{parts.path}")
    if page is not None:
        found["page_url"] = page
    query = parse_qs(parts.query)
    for field in UTM_FIELDS:
        if _blank(raw.get(field)) and (value := tracking_value(query.get(field, [""])[0])):
            found[field] = value
    return found


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
