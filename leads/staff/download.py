"""The leads of a list as a CSV file for staff (``GET /api/staff/leads.csv``): the same
filters and order as the list, every lead in it, streamed a page at a time, in the rows of
`leads export --format csv` (so formulas are neutralised the same way). The audit log records
the download and its filters; a search's words are personal data, so only that one was used."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from leads.staff.export import CSV_HEADER, csv_row
from leads.staff.views import lead_summaries
from leads.storage import staff_queries
from leads.storage.database import Database
from leads.storage.staff_queries import LeadQuery, Position

PAGE = 200


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
    async with database.reading() as session:
        while True:
            leads = await staff_queries.list_leads(
                session=session, query=query, after=after, limit=PAGE
            )
            messages = await staff_queries.messages_of(
                session=session, lead_ids=[lead.id for lead in leads]
            )
            records = await lead_summaries(session=session, leads=leads, messages=messages)
            for lead, record in zip(leads, records, strict=True):
                writer.writerow(csv_row(record, messages[lead.id]))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(leads) < PAGE:
                return
            after = Position(leads[-1].created_at, leads[-1].id)
