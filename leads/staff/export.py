"""Exporting every stored lead, as JSON lines or CSV, oldest first, streamed (`leads export`)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TextIO

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from leads.core.vocabulary import ATTRIBUTION
from leads.storage.leads import iter_leads
from leads.storage.models import Enquiry, Lead, OutboxMessage
from leads.storage.outbox import list_messages

# Where the visitor came from, and how they reached us: the same on leads and enquiries.
ORIGIN = (*ATTRIBUTION, "client_ip", "user_agent")
CSV_COLUMNS = (
    "id", "created_at", "form", "name", "email", "phone", "preferred_contact", "message",
    "interest", "status", "spam", "spam_reason", "enquiry_count", "last_enquiry_at",
    "consent_version", "consent_at", *ORIGIN,
)  # fmt: skip
ENQUIRY_FIELDS = (
    "id", "created_at", "name", "email", "phone", "form", "message", "interest",
    "preferred_contact", "consent_version", *ORIGIN,
)  # fmt: skip


def lead_record(
    lead: Lead | Row[Any] | Mapping[str, Any],
    enquiries: Sequence[Enquiry | Row[Any]],
    notifications: Sequence[OutboxMessage | Row[Any]] = (),
) -> dict[str, Any]:
    """A lead as the export writes it; objects and plain rows (the staff list's) alike."""
    f = fields(lead)
    record: dict[str, Any] = {column: plain(f[column]) for column in CSV_COLUMNS}
    # The receipt ids of its submissions, oldest first: what each sender was told.
    record["enquiry_ids"] = [str(f["receipt_id"]), *(str(e.id) for e in enquiries)]
    record["duplicate_of"] = plain(f["duplicate_of"])
    # Consent withdrawn through the staff side: when, and who entered it (JSON only: the
    # CSV's columns stay as they are, `notifications` last).
    record["consent_withdrawn_at"] = plain(f["consent_withdrawn_at"])
    record["consent_withdrawn_by"] = f["consent_withdrawn_by"]
    # The delivery state of each notification of this lead.
    record["notifications"] = [_notification(fields(n)) for n in notifications]
    record["consent"] = {
        "version": f["consent_version"],
        "text": f["consent_text"],
        "at": plain(f["consent_at"]),
        "ip": f["client_ip"],
        "user_agent": f["user_agent"],
        "page_url": f["page_url"],
    }
    record["enquiries"] = [
        {field: plain(e[field]) for field in ENQUIRY_FIELDS} for e in map(fields, enquiries)
    ]
    return record


def _notification(n: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": str(n["id"]),
        "kind": n["kind"],
        "channel": n["channel"],
        "target": n["target"],
        "status": n["status"],
        "attempts": n["attempts"],
        "last_error": n["last_error"],
        "delivered_at": plain(n["delivered_at"]),
    }


class _Attributes(Mapping[str, Any]):
    """An object's attributes read by name, as a row's fields are."""

    __slots__ = ("_of",)

    def __init__(self, of: object) -> None:
        self._of = of

    def __getitem__(self, name: str) -> Any:
        return getattr(self._of, name)

    def __iter__(self) -> Iterator[str]:
        raise TypeError("an object's attributes are read by name only")

    def __len__(self) -> int:
        raise TypeError("an object's attributes are read by name only")


def fields(thing: object) -> Mapping[str, Any]:
    """What :func:`lead_record` reads a lead, an enquiry or a notification through: a plain
    row's fields by position (looking a name up on a row costs a microsecond, and a list
    page reads thousands), a mapping as it is, an object's attributes by name."""
    if isinstance(thing, Row):
        return dict(zip(thing._fields, thing, strict=True))
    if isinstance(thing, Mapping):
        return thing
    return _Attributes(thing)


# Stored values that are written as they are (see plain).
AS_THEY_ARE = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """A stored value as the export writes it: moments in ISO 8601, ids as text. Called for
    every field of every lead a list or an export writes: the common cases come first."""
    if type(value) in AS_THEY_ARE:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


# Spreadsheets run cells that start with these as formulas (CSV injection): such cells
# are written with a leading apostrophe, which spreadsheets show as text. A phone number in
# E.164 (+ and digits only, as intake stores it) can run nothing, so it is left intact.
# Every cell is also quoted: a spreadsheet that splits on ";" (or "\t") instead of ","
# would otherwise start a new cell, maybe a formula, at "Ann;=1+1". Inside quotes a
# separator is just a character.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
FORMULA_FIRST = frozenset(FORMULA_STARTS)  # each one character: text[:1] in it
E164 = re.compile(r"\+[0-9]{1,15}")


CSV_HEADER = (*CSV_COLUMNS, "enquiry_ids", "duplicate_of", "notifications")


def csv_cell(value: Any) -> str:
    """A value as its cell reads: what :func:`plain` makes of it, booleans in lower case,
    nothing for None, a leading apostrophe before what could run as a formula. Called once
    per cell of a download of every lead: the common cases come first."""
    if value is None:
        return ""
    if type(value) is str:
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif hasattr(value, "isoformat"):
        text = value.isoformat()
    else:
        text = str(value)
    return text_cell(text)


def text_cell(text: str | None) -> str:
    """Text as its cell reads: nothing for None, a leading apostrophe before what could
    run as a formula (the rule of :func:`csv_cell`, for a column known to hold text)."""
    if not text:
        return ""
    if text[0] in FORMULA_FIRST and not E164.fullmatch(text):
        return "'" + text
    return text


def csv_row(record: dict[str, Any], notifications: Sequence[OutboxMessage]) -> list[str]:
    """A :func:`lead_record` as one CSV row under :data:`CSV_HEADER`: the notifications'
    states counted, e.g. "delivered:2 dead:1". `leads export` and the staff download
    write the same rows (the download through :func:`csv_cells`, from plain columns)."""
    return csv_cells(
        [record[c] for c in CSV_COLUMNS],
        record["enquiry_ids"],
        record["duplicate_of"],
        Counter(n.status for n in notifications),
    )


def csv_cells(
    values: Sequence[Any],
    enquiry_ids: Sequence[str],
    duplicate_of: Any,
    statuses: Mapping[str, int],
) -> list[str]:
    """One CSV row: ``values`` are :data:`CSV_COLUMNS`' (stored or made :func:`plain`:
    a cell reads the same); ``enquiry_ids`` the receipts, first submission first;
    ``statuses`` the count of the lead's notifications in each delivery state."""
    summary = " ".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    return [csv_cell(v) for v in values] + [" ".join(enquiry_ids), csv_cell(duplicate_of), summary]


async def export_leads(*, session: AsyncSession, fmt: str, out: TextIO) -> None:
    """Write every lead to ``out``, streamed from the caller's (reading) session."""
    writer = csv.writer(out, quoting=csv.QUOTE_ALL) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(CSV_HEADER)
    async for lead, enquiries in iter_leads(session=session):
        notes = await list_messages(session=session, lead_ids=[lead.id])
        record = lead_record(lead, enquiries, notes)
        if writer is not None:
            writer.writerow(csv_row(record, notes))
        else:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
