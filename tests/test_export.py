"""`leads export --format csv`, run as an operator runs it, on what visitors sent over HTTP:
every cell quoted, cells a spreadsheet would run as formulas made text."""

from __future__ import annotations

import asyncio
import csv
import io

from leads.core.vocabulary import ATTRIBUTION
from tests.support import leads_cli

# What a visitor may type, and what the CSV cell must read back as.
CELLS = {
    "Ann;=1+1": "Ann;=1+1",  # quoted: a ";"-splitting spreadsheet keeps it one cell
    "Bo,=HYPERLINK(1)": "Bo,=HYPERLINK(1)",
    '=cmd|" /C calc"!A0': '\'=cmd|" /C calc"!A0',
    "+1+1 Cy": "'+1+1 Cy",
    "-2+3 Di": "'-2+3 Di",
    "@SUM(A1) Ed": "'@SUM(A1) Ed",
}


async def test_csv_cells_are_all_quoted_and_formulas_made_text(
    client, lead, database_url: str
) -> None:
    for number, name in enumerate(CELLS):
        phone = "(202) 555-0143" if number == 0 else None
        sent = await client.post("/api/leads", json=lead(name=name, phone=phone))
        assert sent.status_code == 201, sent.text
    done = await asyncio.to_thread(leads_cli, database_url, "export", "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    # Every cell quoted, the header's too: written again with QUOTE_ALL, it is the same text.
    again = io.StringIO()
    csv.writer(again, quoting=csv.QUOTE_ALL).writerows(rows)
    assert done.stdout == again.getvalue().replace("\r\n", "\n")  # (read as text)
    assert '"Ann;=1+1"' in done.stdout  # a ";" stays inside its quoted cell
    header, *leads = rows
    name_at, phone_at = header.index("name"), header.index("phone")
    assert [row[name_at] for row in leads] == list(CELLS.values())
    assert [row[phone_at] for row in leads] == ["+12025550143"] + [""] * 5  # kept a number


async def test_the_staff_download_writes_the_export_s_rows(
    make_client, lead, database_url: str
) -> None:
    """GET /api/staff/leads.csv builds its rows from plain columns, page by page; they are
    `leads export --format csv`'s rows, newest first: enquiry ids, duplicates and the
    notifications' states included."""
    client = await make_client(dispatcher="worker")  # the notifications stay pending
    first = lead(name="=Returning Visitor", phone="(202) 555-0143")
    for body in (first, lead(name="Bo"), {**first, "message": "Again"}, lead(name="Cy")):
        sent = await client.post("/api/leads", json=body)
        assert sent.status_code == 201, sent.text
    made = await asyncio.to_thread(leads_cli, database_url, "token", "create", "--name", "csv")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]

    download = await client.get(
        "/api/staff/leads.csv", headers={"Authorization": f"Bearer {token}"}
    )
    exported = await asyncio.to_thread(leads_cli, database_url, "export", "--format", "csv")
    assert download.status_code == 200, download.text
    assert exported.returncode == 0, exported.stderr
    header, *rows = list(csv.reader(io.StringIO(download.text)))
    export_header, *export_rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert header == export_header
    assert rows == export_rows[::-1]  # the list's order: newest first
    assert len(rows) == 3
    returning = rows[-1]
    assert len(returning[header.index("enquiry_ids")].split()) == 2
    assert returning[header.index("notifications")].startswith("pending:")
    assert returning[header.index("name")] == "'=Returning Visitor"


async def test_the_staff_download_neutralises_every_column_a_visitor_writes(
    client, lead, database_url: str
) -> None:
    """The download writes ids, moments, numbers and flags as they are; whatever a visitor
    typed (or their browser sent) still comes out as text, whichever column holds it."""
    typed = {
        "name": "=cmd|' /C calc'!A0",
        "message": "=HYPERLINK(1)",
        **{field: f"=cmd {field}" for field in ATTRIBUTION},
    }
    sent = await client.post(
        "/api/leads", json=lead(**typed), headers={"User-Agent": "@SUM(1) agent"}
    )
    assert sent.status_code == 201, sent.text
    made = await asyncio.to_thread(leads_cli, database_url, "token", "create", "--name", "csv")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]

    download = await client.get(
        "/api/staff/leads.csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status_code == 200, download.text
    header, row = list(csv.reader(io.StringIO(download.text)))
    cells = dict(zip(header, row, strict=True))
    for column, value in {**typed, "user_agent": "@SUM(1) agent"}.items():
        assert cells[column] == "'" + value, column
    assert cells["enquiry_ids"] == sent.json()["id"]  # the receipt, as the visitor got it
    assert cells["spam"] == "false"
    assert cells["enquiry_count"] == "1"
    assert cells["created_at"].endswith("+00:00")
