"""The leads of a list as a CSV file for staff (``GET /api/staff/leads.csv``): the same
filters and order as the list, every lead in it, streamed a page at a time, in the rows of
`leads export --format csv` (so formulas are neutralised the same way). The audit log records
the download and its filters; a search's words are personal data, so only that one was used.

A page is three queries whatever its length: the leads' CSV columns as plain rows, their
enquiry ids, and their notifications counted by state. The download of a large list is
bound by the server's CPU, so no objects are built: ids and moments arrive as the driver
reads them and are written as `leads export` writes them (ids in their 8-4-4-4-12 form,
moments as an aware UTC ``datetime.isoformat()``), numbers, flags and the status as they
are, and every other column, whatever a visitor or staff member can write, through the
formula neutralisation of :func:`text_cell`. Each page is written out before the next is
read, so the server holds one page, however many leads the file has."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from operator import call
from typing import Any

from leads.staff.export import CSV_COLUMNS, CSV_HEADER, text_cell
from leads.storage import download_rows
from leads.storage.database import Database
from leads.storage.download_rows import STATES
from leads.storage.staff_queries import LeadQuery, Position

PAGE = 1000
# CSV_COLUMNS, then what the last three cells are made of (the query adds whether the lead
# has enquiries and its notifications' counts by state).
COLUMNS = (*CSV_COLUMNS, "receipt_id", "duplicate_of")
RECEIPT, DUPLICATE_OF = len(CSV_COLUMNS), len(CSV_COLUMNS) + 1
HAS_ENQUIRIES, COUNTS = len(COLUMNS), len(COLUMNS) + 1


def audit_filters(query: LeadQuery) -> dict[str, Any]:
    """The filters as the audit log keeps them: no search words."""
    return {
        "status": query.status.value if query.status else None,
        "form": query.form,
        "spam": query.spam,
        "created_after": query.created_after.isoformat() if query.created_after else None,
        "created_before": query.created_before.isoformat() if query.created_before else None,
        "search": query.text is not None,
        "assigned_to": query.assigned_to,
        "overdue": query.overdue,
    }


def ident(value: Any) -> str:
    """A raw id (see ``download_rows.raw``) as ``str(uuid.UUID)`` writes it."""
    if value is None:
        return ""
    if type(value) is str:
        if len(value) == 32:  # SQLite's 32 hex digits, lower case
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return str(uuid.UUID(value))
    return str(value)  # asyncpg's UUID


def moment(value: Any) -> str:
    """A raw moment as ``isoformat()`` writes it once aware in UTC (what the UTCDateTime
    column would have made of it): e.g. "2026-12-01T14:52:40.123456+00:00"."""
    if value is None:
        return ""
    if type(value) is str:
        if len(value) == 26 and value[10] == " " and value[19] == ".":  # as SQLite holds it
            if value.endswith(".000000"):  # isoformat() leaves out zero microseconds
                return f"{value[:10]}T{value[11:19]}+00:00"
            return f"{value[:10]}T{value[11:]}+00:00"
        value = datetime.fromisoformat(value)
    at: datetime = value
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def flag(value: Any) -> str:
    return "true" if value else "false"


# How each CSV column's cell is written: text (every column not named here, so a column
# added later is neutralised too) through text_cell; what no one types, as it is.
WRITTEN: dict[str, Callable[[Any], str]] = {
    "id": ident,
    "created_at": moment,
    "last_enquiry_at": moment,
    "consent_at": moment,
    "spam": flag,
    "enquiry_count": str,
    "status": str,  # a LeadStatus
}
CELLS = tuple(WRITTEN.get(column, text_cell) for column in CSV_COLUMNS)


def summary(counts: Sequence[int]) -> str:
    """The notifications' counts in each of STATES, e.g. "delivered:2 dead:1" (as
    csv_cells writes them: the states a lead has, in order)."""
    return " ".join(f"{state}:{n}" for state, n in zip(STATES, counts, strict=True) if n)


async def csv_chunks(database: Database, query: LeadQuery) -> AsyncIterator[str]:
    """The file, one chunk per page of leads, read in one reading session."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_HEADER)
    after: Position | None = None
    created_at, lead_id = CSV_COLUMNS.index("created_at"), CSV_COLUMNS.index("id")
    summaries: dict[tuple[int, ...], str] = {}  # a few distinct ones
    async with database.reading() as session:
        while True:
            rows = await download_rows.list_lead_columns(
                session=session, query=query, after=after, limit=PAGE, columns=COLUMNS
            )
            asked = [row[lead_id] for row in rows if row[HAS_ENQUIRIES]]
            enquiries = await download_rows.enquiry_ids_of(session=session, lead_ids=asked)
            lines = []
            for row in rows:
                cells = list(map(call, CELLS, row))  # CSV_COLUMNS: the first cells
                counts = row[COUNTS:]
                counted = summaries.get(counts)
                if counted is None:
                    counted = summaries[counts] = summary(counts)
                receipt = ident(row[RECEIPT])
                if row[HAS_ENQUIRIES]:
                    receipt = " ".join([receipt, *map(ident, enquiries[row[lead_id]])])
                cells += (receipt, ident(row[DUPLICATE_OF]), counted)
                lines.append(cells)
            writer.writerows(lines)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < PAGE:
                return
            last = rows[-1]
            after = Position(
                datetime.fromisoformat(moment(last[created_at])), uuid.UUID(ident(last[lead_id]))
            )
