"""The leads of a list as a CSV file for staff (``GET /api/staff/leads.csv``): the same
filters and order as the list, every lead in it, streamed a page at a time, in the rows of
`leads export --format csv` (so formulas are neutralised the same way). The audit log records
the download and its filters; a search's words are personal data, so only that one was used.

A page is three queries whatever its length: the leads' CSV columns as plain rows (no
objects built: the download of a large list is bound by the server's CPU), their enquiry
ids, and their notifications counted by state. Each page is written out before the next is
read, so the server holds one page, however many leads the file has."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from leads.staff.export import CSV_COLUMNS, CSV_HEADER, csv_cells
from leads.storage import staff_queries
from leads.storage.database import Database
from leads.storage.staff_queries import LeadQuery, Position

PAGE = 500
# CSV_COLUMNS, then what the last three cells are made of.
COLUMNS = (*CSV_COLUMNS, "receipt_id", "duplicate_of")
RECEIPT, DUPLICATE_OF = len(CSV_COLUMNS), len(CSV_COLUMNS) + 1


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


async def csv_chunks(database: Database, query: LeadQuery) -> AsyncIterator[str]:
    """The file, one chunk per page of leads, read in one reading session."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)
    writer.writerow(CSV_HEADER)
    after: Position | None = None
    created_at, lead_id = CSV_COLUMNS.index("created_at"), CSV_COLUMNS.index("id")
    async with database.reading() as session:
        while True:
            rows = await staff_queries.list_lead_columns(
                session=session, query=query, after=after, limit=PAGE, columns=COLUMNS
            )
            ids = [row[lead_id] for row in rows]
            enquiries = await staff_queries.enquiry_ids_of(session=session, lead_ids=ids)
            states = await staff_queries.notification_states_of(session=session, lead_ids=ids)
            for row in rows:
                writer.writerow(
                    csv_cells(
                        row[:RECEIPT],
                        [str(row[RECEIPT]), *enquiries[row[lead_id]]],
                        row[DUPLICATE_OF],
                        states[row[lead_id]],
                    )
                )
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < PAGE:
                return
            after = Position(rows[-1][created_at], rows[-1][lead_id])
