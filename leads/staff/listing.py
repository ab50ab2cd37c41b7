"""Lists of leads for staff: the filters read from a query string, the opaque cursor, and
one page, newest first. The CSV download reads the same filters (:func:`read_filters`).

Filters: ``status`` (a LeadStatus), ``form``, ``spam`` (true/false, default false: the spam
folder is its own list), ``created_after`` (inclusive) and ``created_before`` (exclusive), as
an ISO 8601 date or date and time (a date, or a time without an offset, is in
LEADS_TIMEZONE), ``q`` (case-insensitive, in the name, the email, and the phone's digits),
``assigned_to`` (a member of staff's email, or ``none``), ``overdue`` (true/false: still new,
past the follow-up deadline counted in opening hours). Leads merged into another are left
out. Every bad value is reported at once, each naming its parameter."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import LeadStatus
from leads.errors import FieldError, InvalidSubmission
from leads.settings import Settings
from leads.staff.views import lead_summaries
from leads.storage import staff_queries
from leads.storage.staff_queries import UNASSIGNED, LeadQuery, Position

DEFAULT_LIMIT = 50
STATUSES = frozenset(s.value for s in LeadStatus)
MAX_LIMIT = 200
MAX_QUERY_LENGTH = 200
BOOLEANS = {"true": True, "false": False}
# What a phone number is written with besides digits: a query made only of these is
# matched against the stored number's digits.
PHONE_PUNCTUATION = set(" +-().")


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next_cursor": self.next_cursor}


def read_filters(params: Mapping[str, str], settings: Settings, now: datetime) -> LeadQuery:
    """The filters of a query string, or :class:`InvalidSubmission` naming every bad one."""
    errors: list[FieldError] = []
    zone = ZoneInfo(settings.timezone)
    values: dict[str, Any] = {}

    def bad(field: str, code: str, message: str) -> None:
        errors.append(FieldError(field, code, message))

    if (status := params.get("status")) is not None:
        if status in STATUSES:
            values["status"] = LeadStatus(status)
        else:
            bad("status", "invalid_choice", "status is one of " + ", ".join(LeadStatus))
    if (form := params.get("form")) is not None:
        values["form"] = form
    for name in ("spam", "overdue"):
        if (flag := params.get(name)) is not None:
            if flag.lower() in BOOLEANS:
                values[name] = BOOLEANS[flag.lower()]
            else:
                bad(name, "invalid_boolean", f"{name} is true or false")
    for name in ("created_after", "created_before"):
        if (moment := params.get(name)) is not None:
            parsed = _moment(moment, zone)
            if parsed is None:
                bad(name, "invalid_datetime", f"{name} is an ISO 8601 date or date and time")
            else:
                values[name] = parsed
    if (text := params.get("q")) is not None and text.strip():
        if len(text) > MAX_QUERY_LENGTH:
            bad("q", "too_long", f"q is at most {MAX_QUERY_LENGTH} characters")
        else:
            values["text"] = text.strip().lower()
            values["phone_digits"] = _phone_digits(text)
    if (assignee := params.get("assigned_to")) is not None:
        if assignee.lower() == UNASSIGNED or "@" in assignee:
            values["assigned_to"] = assignee.strip().lower()
        else:
            bad("assigned_to", "invalid_email", "assigned_to is an email, or none")
    if errors:
        raise InvalidSubmission(errors)
    if values.get("overdue") is not None:
        opening = settings.opening()
        values["overdue_cutoff"] = opening.overdue_cutoff(now, settings.follow_up_hours)
    return LeadQuery(**values)


def _moment(text: str, zone: ZoneInfo) -> datetime | None:
    try:
        if "T" not in text and " " not in text.strip():
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=zone)
        moment = datetime.fromisoformat(text.replace(" ", "+") if "T" in text else text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _phone_digits(text: str) -> str | None:
    """The digits to look for in stored (E.164) numbers, when ``text`` reads as a phone
    number: leading zeros dropped, as a national number's trunk prefix is not stored."""
    stripped = text.strip()
    digits = "".join(c for c in stripped if c.isdigit())
    if len(digits) < 3 or not all(c.isdigit() or c in PHONE_PUNCTUATION for c in stripped):
        return None
    return digits.lstrip("0") or None


def read_limit(params: Mapping[str, str]) -> int:
    raw = params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidSubmission(
            [FieldError("limit", "out_of_range", f"limit is a whole number from 1 to {MAX_LIMIT}")]
        )
    return int(raw)


def encode_cursor(position: Position) -> str:
    raw = json.dumps([position.created_at.isoformat(), str(position.lead_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, lead_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return Position(moment, uuid.UUID(lead_id))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidSubmission(
            [FieldError("cursor", "invalid_cursor", "cursor is the next_cursor of a page")]
        ) from None


async def list_page(
    *,
    session: AsyncSession,
    query: LeadQuery,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page:
    """One page, newest first, as the API shows it; ``next_cursor`` is None on the last."""
    rows, next_cursor = await list_rows(session=session, query=query, limit=limit, cursor=cursor)
    return Page(await lead_summaries(session=session, leads=rows), next_cursor)


async def list_rows(
    *,
    session: AsyncSession,
    query: LeadQuery,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    columns: Sequence[str] | None = None,
) -> tuple[list[Row[Any]], str | None]:
    """One page's plain rows (``staff_queries.list_leads``: ``columns``, every one when
    None, and ``assignee``, ``has_enquiries``), and the next page's cursor (None on the
    last page). A page that shows only some columns reads only those."""
    after = decode_cursor(cursor) if cursor else None
    # One more than asked for says whether there is a next page.
    rows = await staff_queries.list_leads(
        session=session, query=query, after=after, limit=limit + 1, columns=columns
    )
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if more else None
    next_cursor = encode_cursor(Position(last.created_at, last.id)) if last else None
    return rows, next_cursor
