"""`leads export`: every stored lead, as JSON lines or CSV, oldest first, streamed."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from leads.settings import Settings
from leads.storage.database import Database
from leads.storage.leads import iter_leads
from leads.storage.models import Enquiry, Lead

CSV_COLUMNS = (
    "id",
    "created_at",
    "form",
    "name",
    "email",
    "phone",
    "preferred_contact",
    "message",
    "interest",
    "status",
    "spam",
    "spam_reason",
    "enquiry_count",
    "last_enquiry_at",
    "consent_version",
    "consent_at",
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "client_ip",
    "user_agent",
)
ENQUIRY_FIELDS = (
    "id",
    "created_at",
    "form",
    "message",
    "interest",
    "preferred_contact",
    "consent_version",
    "page_url",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "client_ip",
    "user_agent",
)


def lead_record(lead: Lead, enquiries: list[Enquiry]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for column in CSV_COLUMNS:
        record[column] = _plain(getattr(lead, column))
    record["consent"] = {
        "version": lead.consent_version,
        "text": lead.consent_text,
        "at": _plain(lead.consent_at),
        "ip": lead.client_ip,
        "user_agent": lead.user_agent,
        "page_url": lead.page_url,
    }
    record["enquiries"] = [
        {field: _plain(getattr(e, field)) for field in ENQUIRY_FIELDS} for e in enquiries
    ]
    return record


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and not isinstance(value, (str, int, float, bool)):
        return str(value)
    return value


# Spreadsheets run cells that start with these as formulas (CSV injection): such cells
# are written with a leading apostrophe, which spreadsheets show as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


async def export_leads(settings: Settings, fmt: str, out: TextIO) -> None:
    database = Database.from_settings(settings)
    try:
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(CSV_COLUMNS)
        async with database.reading() as session:
            async for lead, enquiries in iter_leads(session=session):
                record = lead_record(lead, enquiries)
                if writer is not None:
                    writer.writerow([_csv_cell(record[c]) for c in CSV_COLUMNS])
                else:
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        await database.close()
